//! `greenlight completions SHELL` and `greenlight man`: shell completions
//! (clap_complete) and man pages (clap_mangen) generated at run time from the
//! clap definitions in [`crate::cli`].
//!
//! Why commands of the binary rather than files made by a build script: the
//! installed binary is the one thing every install has (a package, the
//! container image, `cargo install`), and what it prints always matches its
//! own options, so the completions and pages cannot drift from the version
//! that runs — the way `rustup completions` and `gh completion` work. A build
//! script would write them into `target/`, where no install step picks them
//! up, and would compile the whole CLI a second time for the build host.
//!
//! Owns: turning the `clap::Command` into text. Must not touch: anything
//! but stdout and, for `man --dir`, the files it writes.

use crate::cli::Cli;
use clap::CommandFactory;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, roman};
use std::io::Write;
use std::path::Path;

/// The name the scripts and pages are generated for.
const BIN: &str = "greenlight";

/// `greenlight completions SHELL`: the script on stdout.
pub fn completions(shell: clap_complete::Shell) -> i32 {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), BIN, &mut out);
    write_stdout(&out)
}

/// `greenlight man [--dir DIR]`: greenlight(1) on stdout, or every page
/// (greenlight.1 and greenlight-COMMAND.1) written into `dir`.
pub fn man(dir: Option<&Path>) -> i32 {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    // Builds the subcommands' display names (`greenlight-switch`).
    cmd.build();
    let Some(dir) = dir else {
        return write_stdout(&page(&cmd, false));
    };
    let mut pages = vec![(cmd.clone(), false)];
    pages.extend(
        cmd.get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| (s.clone(), true)),
    );
    for (c, sub) in pages {
        let name = c.get_display_name().unwrap_or(c.get_name());
        let path = dir.join(format!("{name}.1"));
        if let Err(e) = std::fs::write(&path, page(&c, sub)) {
            eprintln!("greenlight: cannot write {}: {e}", path.display());
            return 1;
        }
        println!("{}", path.display());
    }
    0
}

/// One man page in roff: clap_mangen's page, with the `after_help`
/// examples as an EXAMPLES section kept line for line (clap_mangen would
/// fill them into one paragraph under EXTRA) and, on a command's own page,
/// a SEE ALSO naming greenlight(1); both before VERSION.
fn page(cmd: &clap::Command, sub: bool) -> Vec<u8> {
    let examples = cmd.get_after_help().map(|h| h.to_string());
    let man = Man::new(cmd.clone().after_help(None::<&str>)).manual("greenlight manual");
    let mut base = Vec::new();
    // Rendering into a Vec cannot fail.
    let _ = man.render(&mut base);
    let mut roff = Roff::default();
    if let Some(text) = &examples {
        roff.control("SH", ["EXAMPLES"]);
        // No-fill: each example and its explanation stay on their lines.
        roff.control("nf", [] as [&str; 0]);
        for line in text.lines().skip_while(|l| l.trim_end() == "Examples:") {
            roff.text([roman(line)]);
        }
        roff.control("fi", [] as [&str; 0]);
    }
    if sub {
        roff.control("SH", ["SEE ALSO"]);
        roff.text([roman("greenlight(1)")]);
    }
    // `to_writer` starts with the definition of the \*(Aq string, which the
    // page already has: keep the sections only.
    let extra: String = roff
        .render()
        .lines()
        .filter(|l| !l.starts_with(".ie \\n(.g .ds Aq") && !l.starts_with(".el .ds Aq"))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut page = String::from_utf8_lossy(&base).into_owned();
    match page.find("\n.SH VERSION") {
        Some(at) => page.insert_str(at + 1, &extra),
        None => page.push_str(&extra),
    }
    page.into_bytes()
}

/// Writes `bytes` to stdout; a closed pipe (`| head`) is not an error.
fn write_stdout(bytes: &[u8]) -> i32 {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("greenlight: cannot write to stdout: {e}");
            1
        }
    }
}
