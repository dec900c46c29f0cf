//! Process logging to stderr (`GREENLIGHT_LOG`, same syntax as `RUST_LOG`).
//!
//! Default: greenlight at `info`, Pingora at `warn` — Pingora's own per-start
//! chatter is not what an operator needs; failures are logged by greenlight
//! with the upstream named.

/// Installs the logger once; later calls do nothing.
pub fn init() {
    let env = env_logger::Env::new()
        .filter_or(
            "GREENLIGHT_LOG",
            "info,pingora=warn,pingora_core=warn,pingora_proxy=warn",
        )
        .write_style("GREENLIGHT_LOG_STYLE");
    let _ = env_logger::Builder::from_env(env)
        .format_timestamp_millis()
        .format_target(false)
        .try_init();
}
