//! Live configuration: reload (SIGHUP, `POST /api/reload`) and switching an
//! upstream's active pool (`POST /api/upstreams/{name}/switch`).
//!
//! Reload: read the file, validate, build a complete snapshot (pools,
//! routes, certificates), swap — or, on any problem, keep the running snapshot,
//! log every problem as `file:line:col: …` and return them. Requests in flight
//! and open WebSockets are never touched by a reload: a pool keeps its
//! counters across reloads even when rebuilt (see `upstream`), a pool that
//! stops being active is drained, not cut, and so is a server removed from a
//! pool that goes on.
//!
//! Switch decision (so that a later SIGHUP does not silently undo a switch):
//! the config file stays the single truth. `switch` first checks the target
//! pool (a server must accept a TCP connection, unless forced), then rewrites
//! only the value of that upstream's `active:` key in the file — comments,
//! order and layout untouched, written to a temporary file and renamed over
//! the original — and applies the file as a reload does; if applying fails,
//! the previous text is put back. With the embedded
//! default config (no file to edit) the choice is kept in memory and
//! re-applied on every reload.

use crate::config::diag::Diagnostic;
use crate::config::{Config, ConfigSource, load_str};
use crate::state::{ApplyError, ReloadRecord, StateHandle, Writer};
use crate::upstream::Pool;
use crate::upstream::health::Down;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

/// What a successful reload or switch did.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The new generation.
    pub generation: u64,
    /// Changes that need a restart and were not applied.
    pub restart_needed: Vec<String>,
    /// A switch to the pool already active: nothing was changed (no new
    /// generation, the file not rewritten).
    pub already_active: bool,
}

/// Re-reads the configuration and applies it, or keeps the running one.
pub fn reload(state: &StateHandle) -> Result<Applied, ApplyError> {
    let mut writer = state.writer();
    let result = load_with_overrides(state.source(), &writer).and_then(|c| {
        state.apply(&mut writer, c).map(|(snap, restart)| Applied {
            generation: snap.generation,
            restart_needed: restart,
            already_active: false,
        })
    });
    record(state, "reload", &result);
    match &result {
        Ok(a) => {
            log::info!("configuration reloaded: generation {}", a.generation);
            for r in &a.restart_needed {
                log::warn!("{r}");
            }
        }
        Err(e) => {
            for d in e.diagnostics() {
                log::error!("reload rejected, still serving the previous configuration: {d}");
            }
        }
    }
    result
}

pub(crate) fn load_with_overrides(
    source: &ConfigSource,
    writer: &Writer,
) -> Result<Config, ApplyError> {
    let mut cfg = source.load()?;
    for u in &mut cfg.upstreams {
        if let Some(p) = writer.active_overrides.get(&u.name)
            && u.pool(p).is_some()
        {
            u.active = p.clone();
        }
    }
    Ok(cfg)
}

pub(crate) fn record(state: &StateHandle, action: &str, result: &Result<Applied, ApplyError>) {
    state.metrics().reload(result.is_ok());
    let generation = state.load().generation;
    state.record_reload(match result {
        Ok(a) => ReloadRecord {
            at: Some(SystemTime::now()),
            action: action.to_string(),
            ok: true,
            generation,
            problems: vec![],
            diagnostics: vec![],
            restart_needed: a.restart_needed.clone(),
        },
        Err(e) => {
            let diagnostics = e.diagnostics();
            ReloadRecord {
                at: Some(SystemTime::now()),
                action: action.to_string(),
                ok: false,
                generation,
                problems: diagnostics.iter().map(|d| d.to_string()).collect(),
                diagnostics,
                restart_needed: vec![],
            }
        }
    });
}

/// Why a switch was not done.
#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    /// No such upstream.
    #[error("unknown upstream '{0}'")]
    UnknownUpstream(String),
    /// No such pool.
    #[error("upstream '{upstream}' has no pool '{pool}' (pools: {known})")]
    UnknownPool {
        /// Upstream.
        upstream: String,
        /// Requested pool.
        pool: String,
        /// Existing pools, comma separated.
        known: String,
    },
    /// No server of the target pool accepted a connection.
    #[error(
        "refusing to switch upstream '{upstream}' to pool '{pool}': no server is reachable ({detail}); start it first, or use --force"
    )]
    Unreachable {
        /// Upstream.
        upstream: String,
        /// Target pool.
        pool: String,
        /// Per-server connect errors.
        detail: String,
    },
    /// The file could not be rewritten.
    #[error("cannot update {}: {source}", path.display())]
    Write {
        /// Config file.
        path: std::path::PathBuf,
        /// I/O error.
        source: std::io::Error,
    },
    /// The config (as it is on disk) does not load.
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

impl Applied {
    /// A switch to the pool already active: nothing changed.
    pub fn unchanged(generation: u64) -> Applied {
        Applied {
            generation,
            restart_needed: vec![],
            already_active: true,
        }
    }
}

/// The upstream a switch names and its pool `pool`, or why not (the same
/// for a switch of this proxy and of the fleet).
pub(crate) fn switch_target(
    snap: &crate::state::Snapshot,
    upstream: &str,
    pool: &str,
) -> Result<(Arc<crate::upstream::Upstream>, Arc<crate::upstream::Pool>), SwitchError> {
    let up = snap
        .upstream(upstream)
        .ok_or_else(|| SwitchError::UnknownUpstream(upstream.to_string()))?;
    let target = up.pool(pool).ok_or_else(|| SwitchError::UnknownPool {
        upstream: upstream.to_string(),
        pool: pool.to_string(),
        known: up
            .pools
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })?;
    Ok((up.clone(), target.clone()))
}

/// Switches `upstream` to `pool`: check, rewrite `active:`, apply.
pub async fn switch(
    state: &StateHandle,
    upstream: &str,
    pool: &str,
    force: bool,
) -> Result<Applied, SwitchError> {
    let snap = state.load();
    let (up, target) = switch_target(&snap, upstream, pool)?;
    let refused = |e: SwitchError| {
        state
            .metrics()
            .switch(upstream, crate::metrics::SwitchResult::Refused);
        e
    };
    if up.active_pool().name == pool && file_names_active(state.source(), upstream, pool) {
        // Nothing to do: a new generation or a rewritten file would only
        // make a no-op look like a change (and wake every watcher of both).
        log::info!("upstream '{upstream}': pool '{pool}' is already active, nothing changed");
        return Ok(Applied::unchanged(snap.generation));
    }
    if !force {
        probe(upstream, &target, &up.config)
            .await
            .map_err(refused)?;
    }
    drop(snap);
    let mut writer = state.writer();
    let (config, written) = match state.source() {
        ConfigSource::File(path) => {
            let (config, original) = rewrite_active(path, upstream, pool)?;
            (config, Some(Written::File(path, original)))
        }
        ConfigSource::Embedded => {
            let before = writer
                .active_overrides
                .insert(upstream.to_string(), pool.to_string());
            match load_with_overrides(state.source(), &writer) {
                Ok(config) => (config, Some(Written::Override(before))),
                Err(e) => {
                    restore_override(&mut writer, upstream, before);
                    return Err(e.into());
                }
            }
        }
    };
    let (snap, restart) = match state.apply(&mut writer, config) {
        Ok(applied) => applied,
        Err(e) => {
            // The file must not say "green" while blue keeps serving: a later
            // SIGHUP would apply a switch nobody saw succeed.
            match written {
                Some(Written::File(path, original)) => {
                    if let Err(w) = write_atomic(path, &original) {
                        log::error!(
                            "switch failed and {} could not be restored: {w}; it now names pool '{pool}' as active",
                            path.display()
                        );
                    }
                }
                Some(Written::Override(before)) => restore_override(&mut writer, upstream, before),
                None => {}
            }
            return Err(e.into());
        }
    };
    state.metrics().switch(
        upstream,
        if force {
            crate::metrics::SwitchResult::Forced
        } else {
            crate::metrics::SwitchResult::Ok
        },
    );
    log::info!(
        "upstream '{upstream}' switched to pool '{pool}'{} (generation {})",
        if force { " (forced)" } else { "" },
        snap.generation
    );
    let applied = Applied {
        generation: snap.generation,
        restart_needed: restart,
        already_active: false,
    };
    record(
        state,
        &format!("switch {upstream} to {pool}"),
        &Ok(applied.clone()),
    );
    Ok(applied)
}

/// Whether the configuration on disk (if any) also names `pool` as the
/// active pool of `upstream`: when the file was edited to name another pool
/// and not reloaded yet, a switch to the running pool must still write it,
/// or the next reload would undo it.
fn file_names_active(source: &ConfigSource, upstream: &str, pool: &str) -> bool {
    let Some(path) = source.path() else {
        return true;
    };
    crate::config::load_file(path).is_ok_and(|c| {
        c.upstream(upstream)
            .is_some_and(|u| u.active.as_str() == pool)
    })
}

/// Succeeds if some server of `pool` is up by the live health state (active
/// checks, passive marking) *and* accepts a TCP connection within the connect
/// timeout now — and answers the health path as expected when one is
/// configured.
pub(crate) async fn probe(
    upstream: &str,
    pool: &Pool,
    cfg: &crate::config::model::UpstreamConfig,
) -> Result<(), SwitchError> {
    let timeout = cfg.connect_timeout;
    let mut problems = Vec::new();
    for server in pool.servers() {
        let label = &server.label;
        match server.health.down() {
            Some(Down::Active) => {
                problems.push(format!("{label}: marked down by the health checks"));
                continue;
            }
            Some(Down::Passive) => {
                problems.push(format!("{label}: marked down after failed requests"));
                continue;
            }
            None => {}
        }
        if let Some(h) = &cfg.health {
            match crate::upstream::health::check_server(pool, server, h).await {
                Ok(_) => return Ok(()),
                Err(why) => problems.push(format!("{label}: health check {} {why}", h.path)),
            }
            continue;
        }
        match tokio::time::timeout(timeout, server.addr.connect()).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => problems.push(format!("{label}: {e}")),
            Err(_) => problems.push(format!("{label}: no answer in {timeout:?}")),
        }
    }
    Err(SwitchError::Unreachable {
        upstream: upstream.to_string(),
        pool: pool.name.clone(),
        detail: problems.join("; "),
    })
}

/// Rewrites the value of `upstreams.<upstream>.active` in the file at `path`
/// and returns the validated new config with the file's previous text (to
/// put back if applying fails). The file is only replaced when the new text
/// validates; a symlinked file is written through the link.
pub fn rewrite_active(
    path: &Path,
    upstream: &str,
    pool: &str,
) -> Result<(Config, String), SwitchError> {
    let write_err = |source| SwitchError::Write {
        path: path.to_path_buf(),
        source,
    };
    let text = crate::config::read_text(path).map_err(ApplyError::from)?;
    let current = load_str(path, &text).map_err(ApplyError::from)?;
    let origin = current
        .upstream(upstream)
        .map(|u| u.active_origin.clone())
        .ok_or_else(|| SwitchError::UnknownUpstream(upstream.to_string()))?;
    let new_text =
        replace_scalar_at(&text, origin.pos.line, origin.pos.col, pool).ok_or_else(|| {
            ApplyError::Config(crate::config::ConfigError::Invalid(vec![Diagnostic {
                origin: origin.clone(),
                what: "cannot locate the `active:` value to rewrite".into(),
                fix: "write it as a plain value, e.g. `active: blue`".into(),
            }]))
        })?;
    let config = load_str(path, &new_text).map_err(ApplyError::from)?;
    if config.upstream(upstream).map(|u| u.active.as_str()) != Some(pool) {
        return Err(SwitchError::UnknownPool {
            upstream: upstream.to_string(),
            pool: pool.to_string(),
            known: String::new(),
        });
    }
    write_atomic(path, &new_text).map_err(write_err)?;
    Ok((config, text))
}

/// What a switch changed before applying, to be undone if applying fails.
enum Written<'a> {
    /// The config file, with its previous text.
    File(&'a Path, String),
    /// The in-memory choice (embedded config), with its previous value.
    Override(Option<String>),
}

/// Puts back the in-memory active-pool choice `upstream` had before.
fn restore_override(writer: &mut Writer, upstream: &str, before: Option<String>) {
    match before {
        Some(p) => writer.active_overrides.insert(upstream.to_string(), p),
        None => writer.active_overrides.remove(upstream),
    };
}

/// Replaces the file at `path` (the target, if it is a symlink) with `text`,
/// atomically and with the file's permissions (`tls::selfsigned::write_atomic`).
fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let target = std::fs::canonicalize(path)?;
    let mode = std::fs::metadata(&target)?.permissions().mode() & 0o7777;
    crate::tls::selfsigned::write_atomic(&target, text.as_bytes(), mode).map_err(|e| match e {
        crate::tls::TlsError::Write { source, .. } => source,
        other => std::io::Error::other(other.to_string()),
    })
}

/// Replaces the YAML scalar starting at 1-based `line`:`col` (characters)
/// with `value`; handles plain, single- and double-quoted scalars.
fn replace_scalar_at(text: &str, line: u32, col: u32, value: &str) -> Option<String> {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.checked_sub(1)? as usize)
        .map(str::len)
        .sum();
    let rest = &text[line_start..];
    let start = line_start + rest.char_indices().nth(col.checked_sub(1)? as usize)?.0;
    let tail = &text[start..];
    let len = match tail.chars().next()? {
        q @ ('"' | '\'') => 1 + tail[1..].find(q)? + 1,
        _ => tail
            .find(|c: char| c.is_whitespace() || matches!(c, ',' | '}' | ']' | '#'))
            .unwrap_or(tail.len()),
    };
    if len == 0 {
        return None;
    }
    Some(format!(
        "{}{}{}",
        &text[..start],
        value,
        &text[start + len..]
    ))
}

/// Reloads on SIGHUP for the life of the process.
pub struct ReloadService {
    state: StateHandle,
    early: Arc<AtomicBool>,
}

/// SIGHUP caught from the very start of the process, before any state or
/// service exists: from [`HupCatcher::install`] on, a SIGHUP no longer has
/// its default effect (terminating the process); one that arrives before the
/// reload service runs is remembered and served as soon as it does.
///
/// The binary installs it from its ELF `.init_array` (`src/main.rs`), before
/// the Rust runtime and `main` run; `main` and `server::run` install it
/// again, which then only picks up the flag: the one flag lives in a
/// process-wide static because a signal disposition is process-wide too. A
/// SIGHUP that arrives while the dynamic loader is still loading the binary
/// terminates the process: no program can catch that one.
pub struct HupCatcher {
    early: Arc<AtomicBool>,
}

/// The flag set by a SIGHUP, and the switch that gives SIGHUP its default
/// effect back (see [`HupCatcher::restore_default`]).
struct HupFlags {
    early: Arc<AtomicBool>,
    default_now: Arc<AtomicBool>,
}

static HUP: std::sync::OnceLock<HupFlags> = std::sync::OnceLock::new();

impl HupCatcher {
    /// Installs the handler (once per process; later calls share it).
    pub fn install() -> std::io::Result<HupCatcher> {
        if let Some(f) = HUP.get() {
            return Ok(HupCatcher {
                early: f.early.clone(),
            });
        }
        let early = Arc::new(AtomicBool::new(false));
        let default_now = Arc::new(AtomicBool::new(false));
        // Registered first, so that once `default_now` is set a SIGHUP ends
        // the process before it could be recorded as a reload request.
        signal_hook::flag::register_conditional_default(
            signal_hook::consts::SIGHUP,
            default_now.clone(),
        )?;
        signal_hook::flag::register(signal_hook::consts::SIGHUP, early.clone())?;
        let _ = HUP.set(HupFlags {
            early: early.clone(),
            default_now,
        });
        Ok(HupCatcher { early })
    }

    /// For every command but `run`: SIGHUP gets its default effect back (a
    /// closed terminal ends `switch --wait`), and one that arrived while the
    /// command line was parsed ends the process now, as it would have.
    pub fn restore_default(self) {
        if let Some(f) = HUP.get() {
            f.default_now.store(true, Ordering::SeqCst);
            if f.early.swap(false, Ordering::SeqCst) {
                let _ =
                    signal_hook::low_level::emulate_default_handler(signal_hook::consts::SIGHUP);
            }
        }
    }

    /// The reload service for `state`.
    pub fn bind(self, state: StateHandle) -> ReloadService {
        ReloadService {
            state,
            early: self.early,
        }
    }
}

impl ReloadService {
    async fn reload_now(&self) {
        log::info!(
            "SIGHUP: reloading {}",
            match self.state.source() {
                ConfigSource::File(p) => p.display().to_string(),
                ConfigSource::Embedded => crate::config::EMBEDDED_NAME.to_string(),
            }
        );
        let state = self.state.clone();
        // Loading reads files and resolves names: keep it off the async workers.
        let _ = tokio::task::spawn_blocking(move || reload(&state)).await;
    }
}

#[async_trait]
impl BackgroundService for ReloadService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                log::error!("cannot listen for SIGHUP, reload by signal is off: {e}");
                return;
            }
        };
        // SIGUSR1: reopen the access log file (logrotate convention).
        let mut usr1 =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()).ok();
        if self.early.swap(false, Ordering::AcqRel) {
            self.reload_now().await;
        }
        loop {
            tokio::select! {
                Some(()) = hup.recv() => {
                    self.early.store(false, Ordering::Release);
                    self.reload_now().await;
                }
                Some(()) = async { match usr1.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => {
                    if let Some(log) = self.state.access_log() {
                        log::info!("SIGUSR1: reopening the access log");
                        log.reopen();
                    }
                }
                _ = shutdown.changed() => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_rewrite_keeps_everything_else() {
        let text = "upstreams:\n  app:\n    active: blue   # the live pool\n    pools: {}\n";
        let out = replace_scalar_at(text, 3, 13, "green").expect("rewritten");
        assert_eq!(
            out,
            "upstreams:\n  app:\n    active: green   # the live pool\n    pools: {}\n"
        );
        let flow = "app: {active: \"blue\", pools: {}}\n";
        assert_eq!(
            replace_scalar_at(flow, 1, 15, "green").as_deref(),
            Some("app: {active: green, pools: {}}\n")
        );
        assert_eq!(replace_scalar_at("a: b\n", 9, 1, "x"), None);
    }

    /// `{$NAME}` before `active:` on its line moves the parsed column; the
    /// switch still rewrites the file as written, references kept.
    #[test]
    fn switch_rewrites_active_after_an_environment_reference() {
        let text = "listeners:\n  http: {address: \"127.0.0.1:1\"}\nsites:\n  s:\n    hosts: [a.example]\n    routes: [{path: /, upstream: app}]\nupstreams:\n  app: {pools: {blue: [\"{$GL_TEST_NEVER_SET_BLUE:127.0.0.1:3000}\"], green: [\"127.0.0.1:3001\"]}, active: blue}\n";
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("g.yaml");
        std::fs::write(&path, text).expect("write");
        let (config, before) = rewrite_active(&path, "app", "green").expect("switched");
        assert_eq!(before, text);
        assert_eq!(
            config.upstream("app").map(|u| u.active.as_str()),
            Some("green")
        );
        let after = std::fs::read_to_string(&path).expect("read");
        assert_eq!(after, text.replace("active: blue}", "active: green}"));
    }
}
