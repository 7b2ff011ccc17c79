//! `farm`: the command line of the pricing farm.
//!
//! This binary only wires the library crates together: it parses arguments
//! and environment into typed settings ([`cli`]), builds the backends they name
//! ([`wiring`]) and prints results ([`output`]). Errors become a message on
//! stderr and a non-zero exit, never a panic.

mod benching;
mod cli;
mod output;
mod planning;
mod profiles;
mod quoting;
mod telemetry;
mod wiring;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match wiring::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that stopped early (`farm analyze … | head`) is not an error.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            // `{:#}` prints the whole context chain on one line.
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}
