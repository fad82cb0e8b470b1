//! The `baton` binary: parse arguments, hand them to the library, exit with
//! its code.

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = baton::cli::Cli::parse();
    std::process::exit(baton::cli::main(cli));
}
