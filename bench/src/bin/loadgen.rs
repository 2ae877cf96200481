//! `loadgen`: see `loadgen --help` and the `parley_bench` library.

use std::{fs::File, io::BufWriter, process::ExitCode};

use anyhow::{Context, Result};
use clap::Parser;
use parley_bench::{config::Cli, report::Report};
use tracing_subscriber::EnvFilter;

/// Exit status for a run that worked but was not clean (`--assert-clean`).
const NOT_CLEAN: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Progress goes to stderr, so stdout holds only the report.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();

    let report = match parley_bench::run(&cli).await.and_then(|report| {
        write_json(&cli, &report)?;
        Ok(report)
    }) {
        Ok(report) => report,
        Err(err) => {
            eprintln!("loadgen: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    print!("{report}");
    if cli.common.assert_clean && !report.is_clean() {
        eprintln!("loadgen: the run was not clean (--assert-clean)");
        return ExitCode::from(NOT_CLEAN);
    }
    ExitCode::SUCCESS
}

fn write_json(cli: &Cli, report: &Report) -> Result<()> {
    let Some(path) = &cli.common.json else {
        return Ok(());
    };
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    serde_json::to_writer_pretty(BufWriter::new(file), report)
        .with_context(|| format!("writing {}", path.display()))
}
