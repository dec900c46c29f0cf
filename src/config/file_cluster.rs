//! The top-level `cluster:` key as written (fleet mode, see `crate::cluster`):
//! the etcd endpoints, the key prefix shared by the fleet, the lease TTL and
//! the credentials. Compiled by `validate_cluster`.

use super::file::Scalar;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// `cluster:`: several greenlight instances coordinated through etcd.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCluster {
    /// etcd client endpoints: `host:port` or `http(s)://host:port`.
    pub etcd: Spanned<Vec<Spanned<Scalar>>>,
    /// Where the fleet's keys live, e.g. `/greenlight/shop`.
    pub prefix: Spanned<String>,
    /// How long a member's status key outlives its last keep-alive (default `10s`).
    pub lease_ttl: Option<Spanned<Scalar>>,
    /// etcd user (with `password`).
    pub username: Option<Spanned<String>>,
    /// etcd password (with `username`; `{$ETCD_PASSWORD}` keeps it out of the file).
    pub password: Option<Spanned<String>>,
    /// PEM file of the CA that signed etcd's certificate (`https://` endpoints).
    pub ca: Option<Spanned<String>>,
}
