//! The command line: `run`, `check` (and, as they land, the admin-API
//! clients). Parsing only; each command calls into the library and returns an
//! exit code, so `main` stays a few lines.

use crate::config::{self, ConfigSource};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// greenlight: zero-downtime blue/green reverse proxy with automatic TLS.
#[derive(Debug, Parser)]
#[command(name = "greenlight", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy (without -c: the embedded default config).
    Run {
        /// Configuration file.
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Check a configuration file and its certificates, like `nginx -t`.
    Check {
        /// Configuration file (without it: the embedded default).
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

fn source(config: Option<PathBuf>) -> ConfigSource {
    config.map_or(ConfigSource::Embedded, ConfigSource::File)
}

/// Runs a parsed command line; returns the process exit code.
pub fn execute(cli: Cli) -> i32 {
    match cli.command {
        Command::Run { config } => match crate::server::run(source(config)) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("greenlight: {e}");
                1
            }
        },
        Command::Check { config } => check(&source(config)),
    }
}

/// `greenlight check`: every problem, one per line, then a summary.
fn check(src: &ConfigSource) -> i32 {
    let name = match src {
        ConfigSource::File(p) => p.display().to_string(),
        ConfigSource::Embedded => config::EMBEDDED_NAME.to_string(),
    };
    let cfg = match src.load() {
        Ok(c) => c,
        Err(e) => return report(&name, &e.diagnostics()),
    };
    if let Err(problems) = crate::tls::build_cert_map(&cfg, false) {
        return report(&name, &problems);
    }
    let pools: usize = cfg.upstreams.iter().map(|u| u.pools.len()).sum();
    println!(
        "{name}: ok — {} listener(s), {} site(s), {} upstream(s) with {pools} pool(s)",
        cfg.listeners.len(),
        cfg.sites.len(),
        cfg.upstreams.len()
    );
    0
}

fn report(name: &str, problems: &[config::diag::Diagnostic]) -> i32 {
    eprint!("{}", config::diag::render(problems));
    let n = problems.len();
    eprintln!(
        "{name}: {n} problem{} found; the configuration was not accepted",
        if n == 1 { "" } else { "s" }
    );
    1
}
