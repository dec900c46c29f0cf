//! The `client_auth:` key of a TLS site as written (serde structs; see
//! [`super::file`] for the conventions). Compiled by
//! [`super::validate_client_auth`].

use super::file::Scalar;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// `sites.<name>.client_auth`: ask TLS clients for a certificate (nginx
/// `ssl_client_certificate` + `ssl_verify_client` + `ssl_verify_depth`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileClientAuth {
    /// PEM file of the CA certificates the site trusts.
    pub ca: Option<Spanned<String>>,
    /// `required` (default), `optional` or `optional_no_ca`.
    pub verify: Option<Spanned<String>>,
    /// CA certificates allowed above the client's (default 1).
    pub depth: Option<Spanned<Scalar>>,
}
