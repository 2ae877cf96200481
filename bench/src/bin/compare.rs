//! `compare`: Parley against the Node peer; see `compare --help` and
//! `parley_bench::compare`.

use std::process::ExitCode;

use clap::Parser;
use parley_bench::compare::{self, meta, Args};
use tracing_subscriber::EnvFilter;

/// Exit status when the report was written but some runs could not be done.
const SOME_RUNS_FAILED: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // Progress goes to stderr, so stdout holds only the report. loadgen's own
    // per-run progress is quiet unless RUST_LOG asks for it.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();

    let command_line = meta::command_line(std::env::args());
    match compare::run(&args, &command_line).await {
        Ok(outcome) => {
            print!("{}", outcome.markdown);
            if outcome.failed_runs > 0 {
                eprintln!(
                    "compare: {} run(s) could not be done; see the report",
                    outcome.failed_runs
                );
                return ExitCode::from(SOME_RUNS_FAILED);
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("compare: {err:#}");
            ExitCode::FAILURE
        }
    }
}
