//! The `tidepool` binary: parse the command line, set up logging, run.

use clap::Parser;

fn main() -> std::process::ExitCode {
    tidepool::cli::main(tidepool::cli::Cli::parse())
}
