//! The command line: `run`, `check`, the admin-API clients (`switch`,
//! `status`, `reload`), `import-nginx`, and the shell completions and man
//! pages generated from these very definitions (`completions`, `man`).
//! Parsing only; each command calls into the library and returns an exit
//! code, so `main` stays a few lines.

use crate::config::{self, ConfigSource};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// `greenlight switch --help` examples (also the man page's EXAMPLES).
const SWITCH_EXAMPLES: &str = "\
Examples:
  greenlight switch app green --wait --timeout 5m
      New requests of upstream app go to pool green; returns 0 once the old
      pool is drained (safe to stop), 1 if that takes over 5 minutes.
  greenlight switch app blue --wait
      Roll back: blue takes the new requests again and green drains.
  greenlight switch app green --force -c /etc/greenlight/greenlight.yaml
      Switch although no server of green accepts a connection yet; the admin
      address and token come from the running proxy's config file.";

/// `greenlight status --help` examples (also the man page's EXAMPLES).
const STATUS_EXAMPLES: &str = "\
Examples:
  greenlight status
      Upstreams and pools (state, in flight, WebSockets, drain deadline,
      server health), certificates and the last reload, once.
  greenlight status --watch
      The same, redrawn in place every 2s until Ctrl-C: watch the old pool
      drain during a deploy.
  greenlight status --watch --interval 500ms --count 20 >> drain.log
      Twenty frames half a second apart, one after another (stdout is not
      a terminal: no screen codes), then exit.
  greenlight status --json | jq '.upstreams[].pools[] | {name, state, inflight}'
      The admin API's JSON, for scripts.";

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
        /// Take the listening sockets over from a running greenlight (send it
        /// SIGQUIT right after starting this one): a zero-downtime binary upgrade.
        #[arg(long)]
        upgrade: bool,
    },
    /// Check a configuration file and its certificates, like `nginx -t`.
    Check {
        /// Configuration file (without it: the embedded default).
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Send new requests of UPSTREAM to POOL; the old pool drains.
    #[command(after_help = SWITCH_EXAMPLES)]
    Switch {
        /// Upstream name.
        upstream: String,
        /// Pool to make active.
        pool: String,
        /// Wait until the old pool is drained (safe to stop), showing progress.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up (exit 1) after this long, e.g. `90s`.
        #[arg(long, value_name = "DURATION")]
        timeout: Option<String>,
        /// Switch even if no server of POOL accepts a connection.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show upstreams, pools, drains, certificates and the last reload.
    #[command(after_help = STATUS_EXAMPLES)]
    Status {
        /// Print the API's JSON instead of tables (with --watch and stdout
        /// not a terminal: one JSON document per line).
        #[arg(long)]
        json: bool,
        /// Show it again every --interval until Ctrl-C: redrawn in place on
        /// a terminal, one frame after another otherwise.
        #[arg(short, long)]
        watch: bool,
        /// With --watch: time between two frames, e.g. 500ms or 5s [default: 2s].
        #[arg(long, value_name = "DURATION", requires = "watch")]
        interval: Option<String>,
        /// With --watch: stop after N frames (for scripts and tests).
        #[arg(long, value_name = "N", requires = "watch",
              value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Re-read the configuration file of a running greenlight (like SIGHUP).
    Reload {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Convert an nginx site (or nginx.conf with its includes) into greenlight YAML.
    ImportNginx {
        /// nginx.conf or a sites-enabled file.
        path: PathBuf,
        /// Write the YAML here instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// nginx's prefix (like `nginx -p`): where relative includes are looked up.
        #[arg(long, value_name = "DIR")]
        prefix: Option<PathBuf>,
        /// Use ACME (Let's Encrypt) with this contact for certbot certificates.
        #[arg(long, value_name = "EMAIL")]
        acme: Option<String>,
    },
    /// Print the shell completion script for SHELL, e.g.
    /// `greenlight completions bash > /etc/bash_completion.d/greenlight`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page greenlight(1) (roff), or with --dir write it and
    /// one page per command (greenlight-switch.1, ...) into DIR.
    Man {
        /// Write greenlight.1 and greenlight-COMMAND.1 here instead of
        /// printing greenlight.1.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// How the admin commands find the running proxy.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// Admin API address (default: from -c, else 127.0.0.1:9090).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<std::net::SocketAddr>,
    /// The running proxy's config file, to find its admin address and token.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// File holding the admin bearer token.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

fn source(config: Option<PathBuf>) -> ConfigSource {
    config.map_or(ConfigSource::Embedded, ConfigSource::File)
}

/// Runs a parsed command line; returns the process exit code.
pub fn execute(cli: Cli) -> i32 {
    match cli.command {
        Command::Run { config, upgrade } => match crate::server::run(source(config), upgrade) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("greenlight: {e}");
                1
            }
        },
        Command::Check { config } => check(&source(config)),
        Command::Switch {
            upstream,
            pool,
            wait,
            timeout,
            force,
            admin,
        } => crate::cli_admin::switch(&admin, &upstream, &pool, wait, timeout.as_deref(), force),
        Command::Status {
            json,
            watch: false,
            admin,
            ..
        } => crate::cli_admin::status(&admin, json),
        Command::Status {
            json,
            watch: true,
            interval,
            count,
            admin,
        } => crate::cli_watch::watch(&admin, json, interval.as_deref(), count),
        Command::Reload { admin } => crate::cli_admin::reload(&admin),
        Command::ImportNginx {
            path,
            output,
            prefix,
            acme,
        } => import_nginx(&path, output.as_deref(), prefix, acme),
        Command::Completions { shell } => crate::cli_docs::completions(shell),
        Command::Man { dir } => crate::cli_docs::man(dir.as_deref()),
    }
}

/// `greenlight import-nginx`: YAML to stdout or `-o`, warnings to stderr.
/// Exit 0 converted, 1 parse error, 2 nothing usable found.
fn import_nginx(
    path: &std::path::Path,
    output: Option<&std::path::Path>,
    prefix: Option<PathBuf>,
    acme_email: Option<String>,
) -> i32 {
    let opts = crate::nginx::ImportOptions { prefix, acme_email };
    let out = match crate::nginx::import(path, &opts) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return e.exit_code();
        }
    };
    for w in &out.warnings {
        eprintln!("{w}");
    }
    let real = out.warnings.iter().filter(|w| !w.is_note()).count();
    match output {
        Some(file) => {
            if let Err(e) = std::fs::write(file, &out.yaml) {
                eprintln!("greenlight: cannot write {}: {e}", file.display());
                return 1;
            }
            eprintln!(
                "wrote {}: {real} warning(s) to review; then run `greenlight check -c {}`",
                file.display(),
                file.display()
            );
        }
        None => print!("{}", out.yaml),
    }
    0
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
    if let Err(problems) = crate::tls::build_cert_map(&cfg, false, &Default::default()) {
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
