//! The admin API: a separate listener (loopback by default) speaking JSON.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/` | the live deploy dashboard (see [`dashboard`]) |
//! | GET | `/api/status` | version, generation, reloads, sites, upstreams, certificates |
//! | GET | `/api/certificates` | per TLS site: names, issuer, expiry, ACME attempts and errors |
//! | GET | `/api/upstreams` | every upstream and pool: state, servers, in flight, WebSockets, drain times |
//! | POST | `/api/upstreams/{name}/switch` | body `{"pool": "green", "force": false}` |
//! | POST | `/api/reload` | re-read the config file |
//! | GET | `/api/cluster` | fleet mode: live members, applied switch, drained (`cluster::status`) |
//! | GET | `/metrics` | Prometheus text format (see `metrics`) |
//!
//! Every request first passes the cross-site and DNS-rebinding checks of
//! [`guard`] (Host, Origin, Sec-Fetch-Site, and a JSON content type on a
//! state change); then the token, if one is set — except for the dashboard
//! page, which holds no data and asks for the token itself.
//!
//! Errors are JSON `{"error": "..."}` with 400 (malformed body), 401 (token),
//! 403 (refused by [`guard`]: the message names the rule and the fix),
//! 404 (unknown upstream/pool/path), 409 (switch refused: target unreachable),
//! 422 (config problems, listed in `problems`). It only reads state through
//! `StateHandle` and changes it only through `reload`; it never holds a
//! snapshot across an await.

pub mod client;
pub mod dashboard;
pub mod guard;
mod next_step;
pub mod safe_to_stop;
mod views;

use crate::reload::{self, SwitchError};
use crate::state::{ApplyError, StateHandle};
use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::{Value, json};

/// Largest request body the admin API reads.
const MAX_BODY: usize = 64 * 1024;

/// The admin API application.
pub struct AdminApi {
    state: StateHandle,
    token: Option<String>,
    hosts: guard::HostRules,
}

impl AdminApi {
    /// The API over `state`, answering to the names `hosts` accepts; with
    /// `token`, every request needs `Authorization: Bearer <token>`.
    pub fn new(state: StateHandle, token: Option<String>, hosts: guard::HostRules) -> AdminApi {
        AdminApi {
            state,
            token,
            hosts,
        }
    }

    /// The cross-site checks of [`guard`], then the token (not for the
    /// dashboard page: a browser cannot add it to a navigation).
    fn admit(&self, session: &ServerSession) -> Result<(), (StatusCode, Value)> {
        let req = session.req_header();
        self.hosts
            .check_origin(&req.uri, &req.headers)
            .and_then(|()| guard::check_content_type(&req.method, &req.headers))
            .map_err(|r| error(StatusCode::FORBIDDEN, &r.0))?;
        if !is_dashboard(session) && !self.authorized(session) {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token",
            ));
        }
        Ok(())
    }

    fn authorized(&self, session: &ServerSession) -> bool {
        let Some(want) = &self.token else {
            return true;
        };
        let got = session
            .req_header()
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        // Compare without an early exit on the first different byte.
        got.len() == want.len()
            && got
                .bytes()
                .zip(want.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    async fn route(&self, session: &mut ServerSession) -> (StatusCode, Value) {
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_string();
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (&method, parts.as_slice()) {
            (&Method::GET, ["api", "status"]) => (StatusCode::OK, views::status(&self.state)),
            (&Method::GET, ["api", "certificates"]) => (
                StatusCode::OK,
                json!({ "certificates": views::certificates(&self.state) }),
            ),
            (&Method::GET, ["api", "upstreams"]) => (
                StatusCode::OK,
                views::upstreams(
                    &self.state.load(),
                    &self.state.live_pools(),
                    self.state.source(),
                ),
            ),
            (&Method::POST, ["api", "reload"]) => self.reload().await,
            (&Method::GET, ["api", "cluster"]) => {
                crate::cluster::status::api_view(self.state.cluster().map(|c| &**c), &self.state)
                    .await
            }
            (&Method::POST, ["api", "upstreams", name, "switch"]) => {
                let name = name.to_string();
                match read_json(session).await {
                    Ok(body) => self.switch(&name, &body).await,
                    Err(e) => error(StatusCode::BAD_REQUEST, &e),
                }
            }
            (
                _,
                [""]
                | [
                    "api",
                    "status" | "upstreams" | "reload" | "certificates" | "cluster",
                ],
            )
            | (_, ["api", "upstreams", _, "switch"]) => {
                error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
            }
            _ => error(StatusCode::NOT_FOUND, &format!("no such endpoint: {path}")),
        }
    }

    async fn reload(&self) -> (StatusCode, Value) {
        let state = self.state.clone();
        match tokio::task::spawn_blocking(move || reload::reload(&state)).await {
            Ok(Ok(a)) => (
                StatusCode::OK,
                json!({"generation": a.generation, "restart_needed": a.restart_needed}),
            ),
            Ok(Err(e)) => problems(&e),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    }

    async fn switch(&self, upstream: &str, body: &Value) -> (StatusCode, Value) {
        let Some(pool) = body.get("pool").and_then(Value::as_str) else {
            return error(
                StatusCode::BAD_REQUEST,
                "the body must be a JSON object with a string `pool`",
            );
        };
        let force = body.get("force").and_then(Value::as_bool).unwrap_or(false);
        if let Some(c) = self.state.cluster() {
            return crate::cluster::status::api_switch(c, &self.state, upstream, pool, force).await;
        }
        let from = self
            .state
            .load()
            .upstream(upstream)
            .map(|u| u.active_pool().name.clone());
        match reload::switch(&self.state, upstream, pool, force).await {
            Ok(a) => (StatusCode::OK, switched(upstream, from, pool, force, &a)),
            Err(e) => switch_refused(&e),
        }
    }
}

/// The answer to a switch that was applied, on this proxy or (with
/// `cluster_revision` added) for the fleet.
pub(crate) fn switched(
    upstream: &str,
    from: Option<String>,
    to: &str,
    force: bool,
    a: &reload::Applied,
) -> Value {
    json!({
        "upstream": upstream,
        "from": from,
        "to": to,
        "forced": force,
        "generation": a.generation,
        "restart_needed": a.restart_needed,
        "already_active": a.already_active,
    })
}

/// The answer to a switch refused before anything changed (local or fleet).
pub(crate) fn switch_refused(e: &SwitchError) -> (StatusCode, Value) {
    match e {
        SwitchError::UnknownUpstream(_) | SwitchError::UnknownPool { .. } => {
            error(StatusCode::NOT_FOUND, &e.to_string())
        }
        SwitchError::Unreachable { .. } => error(StatusCode::CONFLICT, &e.to_string()),
        SwitchError::Apply(e) => problems(e),
        SwitchError::Write { .. } => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// `GET /`: the dashboard page.
fn is_dashboard(session: &ServerSession) -> bool {
    let req = session.req_header();
    req.method == Method::GET && req.uri.path() == "/"
}

fn error(status: StatusCode, msg: &str) -> (StatusCode, Value) {
    (status, json!({ "error": msg }))
}

fn problems(e: &ApplyError) -> (StatusCode, Value) {
    let list: Vec<String> = e.diagnostics().iter().map(|d| d.to_string()).collect();
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"error": "the configuration has problems; the running one is kept", "problems": list}),
    )
}

async fn read_json(session: &mut ServerSession) -> Result<Value, String> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_BODY {
                    return Err(format!("body larger than {MAX_BODY} bytes"));
                }
            }
            Ok(None) => break,
            Err(e) => return Err(format!("cannot read the body: {e}")),
        }
    }
    if body.is_empty() {
        return Err("empty body; send JSON like {\"pool\": \"green\"}".into());
    }
    serde_json::from_slice(&body).map_err(|e| format!("malformed JSON: {e}"))
}

impl AdminApi {
    /// `GET /metrics`: pool gauges are sampled now, then everything rendered.
    fn metrics(&self) -> Response<Vec<u8>> {
        let m = self.state.metrics();
        for pool in self.state.live_pools() {
            let ph = pool.phase();
            m.pool_handles(&pool.upstream, &pool.name)
                .set(&crate::metrics::PoolSample {
                    inflight: pool.inflight(),
                    websockets: pool.websockets(),
                    state: ph.state.as_str(),
                    drain_started: ph.drain_started,
                    drain_deadline: ph.drain_deadline,
                    last_drain: ph.last_drain,
                });
            for s in pool.servers() {
                m.set_server_up(&pool.upstream, &pool.name, &s.label, s.health.is_up());
            }
        }
        let text = m.render().into_bytes();
        Response::builder()
            .status(StatusCode::OK)
            .header(http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)
            .header(http::header::CONTENT_LENGTH, text.len())
            .body(text)
            .unwrap_or_else(|_| Response::new(Vec::new()))
    }
}

#[async_trait]
impl ServeHttp for AdminApi {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let (status, body) = match self.admit(session) {
            Err(refused) => refused,
            Ok(()) if is_dashboard(session) => return dashboard::response(),
            Ok(())
                if session.req_header().method == Method::GET
                    && session.req_header().uri.path() == "/metrics" =>
            {
                return self.metrics();
            }
            Ok(()) => self.route(session).await,
        };
        let mut text = serde_json::to_vec_pretty(&body).unwrap_or_default();
        text.push(b'\n');
        Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("x-content-type-options", "nosniff")
            .header(http::header::CONTENT_LENGTH, text.len())
            .body(text)
            .unwrap_or_else(|_| Response::new(Vec::new()))
    }
}
