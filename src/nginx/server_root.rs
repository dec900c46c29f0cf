//! The files a server serves from its own `root` when no location takes a
//! request.
//!
//! nginx answers a request no `location` matches with the server's own
//! settings: its `root` and `index` (the static-file handler), its headers,
//! `expires` and access rules. A server that sets `root` and has no
//! `location /` therefore serves its root for every other path. greenlight
//! answers unmatched paths 404, so that behaviour becomes an explicit `/`
//! files route. Not for a server that runs scripts: serving its root as
//! files would send the scripts' source where nginx ran them.

use super::convert::{Ctx, Inherit, Route};
use super::location::LocKind;
use super::parse::Directive;
use super::server::ServerInfo;

/// Adds the `/` files route of `server` (block `d`, settings `inh`) when
/// nginx would serve its root for paths no location takes.
pub(crate) fn add<'a>(
    ctx: &mut Ctx<'a>,
    d: &'a Directive,
    inh: &Inherit<'a>,
    info: &mut ServerInfo<'a>,
) {
    if inh.root.is_none() || info.runs_scripts {
        return;
    }
    // A block that redirects `/` (to https) is a redirect, not a file server.
    if !info.redirects.is_empty() || info.scheme_redirect.is_some() || info.answer.is_some() {
        return;
    }
    // A prefix `/` (also `^~ /`) takes every path no longer location
    // takes: nothing falls through to the server then.
    if info
        .routes
        .iter()
        .any(|r| r.path == "/" || r.path == "^~ /")
    {
        return;
    }
    let Some(files) = super::files::files_of(
        ctx,
        LocKind::Prefix,
        inh.root,
        None,
        inh.index,
        None,
        &inh.set_vars,
        &[],
        &inh.files,
    ) else {
        return;
    };
    let (req, resp) = super::headers::steps(ctx, inh, None, &[]);
    super::ratelimit::record_route(ctx, d, &inh.rate, inh.root);
    info.routes.push(Route {
        charset: inh.files.charset.clone(),
        comment: Some("no location takes these paths: nginx served the server's root".to_string()),
        files: Some(files),
        req,
        resp,
        timeouts: inh.timeouts.clone(),
        access: super::access::of(ctx, &inh.access, d),
        compress: super::compress::def(ctx, &inh.gzip, true),
        ..Route::bare("/".to_string(), d)
    });
}
