//! The `greenlight` binary: parse the command line, run, exit with its code.
//!
//! SIGHUP is caught before anything else runs (see [`catch_hup_before_main`]),
//! so that a deploy script that reloads right after starting greenlight
//! never kills it; every command but `run` gives SIGHUP its default effect
//! back once the command line is parsed.

// One of the two exceptions to `unsafe_code = "deny"` (Cargo.toml): registering
// a constructor (the other is `memtrim`'s malloc_trim).
#![allow(unsafe_code)]

use clap::Parser;
use greenlight::cli::{Cli, Command};
use greenlight::reload::HupCatcher;

/// Installs the SIGHUP catcher from the ELF `.init_array`: the dynamic
/// loader calls it right after relocating the binary, before the Rust
/// runtime's own start-up and `main` — the earliest point a program can
/// reach. (A SIGHUP that arrives while the loader is still mapping and
/// relocating the binary ends the process: nothing in it runs yet.) An
/// error is reported by the second `install` in `main`.
extern "C" fn catch_hup_before_main() {
    let _ = HupCatcher::install();
}

// SAFETY: a plain function pointer placed in `.init_array`, the array the
// loader calls once at start-up; the function only registers a signal
// handler (signal-hook) and never unwinds (errors are ignored).
#[used]
#[unsafe(link_section = ".init_array")]
static CATCH_HUP_BEFORE_MAIN: extern "C" fn() = catch_hup_before_main;

fn main() {
    // Already installed by the constructor; this picks it up (or installs it
    // where `.init_array` is not run, reporting the error).
    let hup = HupCatcher::install();
    greenlight::logging::init();
    let cli = Cli::parse();
    match (&cli.command, hup) {
        (Command::Run { .. }, Ok(_)) => {}
        (_, Ok(hup)) => hup.restore_default(),
        (_, Err(e)) => log::warn!("cannot catch SIGHUP: {e}"),
    }
    std::process::exit(greenlight::cli::execute(cli));
}
