//! The `greenlight` binary: parse the command line, run, exit with its code.

use clap::Parser;

fn main() {
    greenlight::logging::init();
    let cli = greenlight::cli::Cli::parse();
    std::process::exit(greenlight::cli::execute(cli));
}
