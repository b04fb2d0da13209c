//! `persona`: parses the command line, sets up logging, runs the command ([`cli::dispatch`]) and
//! turns its error into a message and an exit code.
//!
//! Exit codes: 0 success, 1 internal error, 2 bad usage, 3 bad input, 4 bad configuration,
//! 5 storage error, 6 another run of the same date holds the lock, 7 a data-quality gate
//! failed, 8 a stage timed out, 130/143 interrupted (see docs/operations.md).

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::args::Cli::parse();
    init_logging();
    match cli::dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let e = e.explained();
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// On a terminal the progress display shows the stages and logs show warnings only, unless
/// `RUST_LOG` asks for more. Elsewhere (cron, Airflow) stage lines are logged at info.
fn init_logging() {
    let default = if std::io::stderr().is_terminal() {
        "warn"
    } else {
        "info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
