//! The `greenlight` binary: parse the command line, run, exit with its code.

use clap::Parser;

// mimalloc instead of glibc malloc: the proxy allocates and frees small
// buffers per request from several threads; in the side-by-side benchmark
// glibc's malloc/free were about a tenth of the proxy's CPU time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    greenlight::logging::init();
    let cli = greenlight::cli::Cli::parse();
    std::process::exit(greenlight::cli::execute(cli));
}
