//! Route plans: what `validate` compiles a site's routes into and the proxy
//! hooks only execute (see ARCHITECTURE.md, "Routes are compiled plans").
//!
//! Layers point down: `config` and `state` build what lives here, `proxy`
//! runs it; nothing here reaches into `proxy`.

pub mod router;
