//! `compare`: Parley against the Node peer in one run, on one machine.
//!
//! Each scenario runs loadgen's modes in-process against a fresh server
//! process per run (Parley's release binary, then the Node peer, alternating,
//! never both at once) and reports medians over the runs, Parley ÷ Node
//! ratios and the project's targets as Markdown.
//!
//! - [`stats`]: medians, ratios, targets.
//! - [`markdown`]: the report's text.
//! - [`servers`]: starting and stopping the servers.
//! - [`scenarios`]: fanout, rate, idle and storm, and the page sizes.
//! - [`page`]: file sizes, brotli, and fetching a page.
//! - [`browser`]: the page in Chromium (`bench/page/measure.mjs`): cold load
//!   on a slow phone, main-thread time per incoming message.
//! - [`meta`]: date, machine, commit, command line.

pub mod browser;
pub mod markdown;
pub mod meta;
pub mod page;
pub mod scenarios;
pub mod servers;
pub mod stats;

use std::{
    fs::File,
    io::BufWriter,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use anyhow::{ensure, Context, Result};
use clap::{builder::RangedU64ValueParser, Args as ClapArgs, Parser, ValueEnum};
use serde::Serialize;

use self::{
    browser::BrowserScale,
    markdown::Section,
    scenarios::{PageRaw, RawRun, Runner},
    servers::Launcher,
};
use crate::config::{rate, seconds};

/// compare: runs the performance scenarios against Parley's release server
/// and the Node peer, a fresh server process per run, and reports medians,
/// Parley ÷ Node ratios and the targets as Markdown.
#[derive(Debug, Clone, Parser)]
#[command(version)]
pub struct Args {
    /// Repository root: holds target/release/server, target/site and
    /// bench/peers/node-ws. The servers run with it as working directory.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,

    /// Runs per server of each scenario; the report shows their medians.
    #[arg(long, default_value_t = 3,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=100))]
    pub runs: usize,

    /// Also write the Markdown report to this file (rewritten after each
    /// scenario, so an interrupted run keeps what it finished).
    #[arg(long)]
    pub out: Option<PathBuf>,

    /// Write every run's full loadgen report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Tiny scale, to check the harness in a minute or two: 50 clients and 5
    /// senders with 1+2 s windows, 200 idle and 200 storm connections. Scale
    /// flags given explicitly still win.
    #[arg(long)]
    pub quick: bool,

    /// Run only these scenarios (repeat the flag, or separate with commas).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Scenario>,

    #[command(flatten)]
    pub knobs: Knobs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Steady traffic: latency, losses, server CPU per delivery.
    Fanout,
    /// Rising rate: the highest rate with low latency and nothing lost.
    Rate,
    /// Idle connections: server memory per connection.
    Idle,
    /// One message to every connection: time until the last has it.
    Storm,
    /// The page: wasm and JS, raw and brotli; then, in Chromium, a cold
    /// load on a slow phone and the main thread's time per message.
    Page,
}

impl Scenario {
    pub const ALL: [Self; 5] = [
        Self::Fanout,
        Self::Rate,
        Self::Idle,
        Self::Storm,
        Self::Page,
    ];
}

/// Scale flags. Each defaults to the full scale, or to the `--quick` one.
#[derive(Debug, Clone, Default, ClapArgs)]
#[command(next_help_heading = "Scale")]
pub struct Knobs {
    /// fanout: client connections [default: 1000; quick: 50]
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(2..))]
    pub fanout_clients: Option<usize>,
    /// fanout: clients that send [default: 100; quick: 5]
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub fanout_senders: Option<usize>,
    /// fanout: messages per second from each sender [default: 1]
    #[arg(long, value_parser = rate)]
    pub fanout_rate: Option<f64>,
    /// fanout: seconds of warm-up [default: 5; quick: 1]
    #[arg(long, value_parser = seconds)]
    pub fanout_warmup: Option<Duration>,
    /// fanout: seconds measured [default: 20; quick: 2]
    #[arg(long, value_parser = seconds)]
    pub fanout_duration: Option<Duration>,

    /// rate: client connections [default: 1000; quick: 50]
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(2..))]
    pub rate_clients: Option<usize>,
    /// rate: clients that send [default: 100; quick: 5]
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub rate_senders: Option<usize>,
    /// rate: messages per second per sender, step by step, rising
    /// [default: 1,2,4,8,16,32,64; quick: 1,8,64]
    #[arg(long, value_parser = rate, value_delimiter = ',')]
    pub rate_steps: Option<Vec<f64>>,
    /// rate: seconds of warm-up per step [default: 2; quick: 1]
    #[arg(long, value_parser = seconds)]
    pub rate_warmup: Option<Duration>,
    /// rate: seconds measured per step [default: 5; quick: 2]
    #[arg(long, value_parser = seconds)]
    pub rate_duration: Option<Duration>,
    /// rate: a step fails at this p99 latency (ms) or above [default: 50]
    #[arg(long)]
    pub rate_max_p99: Option<f64>,
    /// rate: passes up the ladder per server; the report shows the median
    /// of each pass's best [default: 1]
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(1..=100))]
    pub rate_runs: Option<usize>,

    /// idle: connections [default: 10000; quick: 200]
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub idle_clients: Option<usize>,
    /// idle: seconds to hold them [default: 3; quick: 1]
    #[arg(long, value_parser = seconds)]
    pub idle_hold: Option<Duration>,

    /// storm: connections, the sender included [default: 10000; quick: 200]
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(2..))]
    pub storm_clients: Option<usize>,
    /// storm: messages (rounds) per run [default: 5]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub storm_repeat: Option<u64>,

    /// page: skip the browser part (cold load, time per message); only the
    /// page's sizes
    #[arg(long)]
    pub skip_browser: bool,
    /// page: the Chromium to drive [default: /usr/bin/chromium]
    #[arg(long)]
    pub chromium: Option<PathBuf>,
    /// page: messages stored in the room before the cold load [default: 50]
    #[arg(long)]
    pub page_stored: Option<usize>,
    /// page: lines shown for each measured batch of messages
    /// [default: 100,500; quick: 100]
    #[arg(long, value_delimiter = ',')]
    pub page_lines: Option<Vec<usize>>,
    /// page: lines held scrolled up for the last batch, 0 for none
    /// [default: 2000; quick: 300]
    #[arg(long)]
    pub page_held: Option<usize>,
    /// page: messages per measured batch [default: 100; quick: 20]
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub page_batch: Option<usize>,

    /// all: connections being opened at once, as loadgen's
    /// --connect-concurrency [default: 200]
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub connect_concurrency: Option<usize>,
}

/// The scale a comparison runs at, every flag resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scale {
    pub runs: usize,
    pub fanout_clients: usize,
    pub fanout_senders: usize,
    pub fanout_rate: f64,
    pub fanout_warmup_secs: f64,
    pub fanout_duration_secs: f64,
    pub rate_clients: usize,
    pub rate_senders: usize,
    pub rate_steps: Vec<f64>,
    pub rate_warmup_secs: f64,
    pub rate_duration_secs: f64,
    pub rate_max_p99_ms: f64,
    pub rate_runs: usize,
    pub idle_clients: usize,
    pub idle_hold_secs: f64,
    pub storm_clients: usize,
    pub storm_repeat: u64,
    /// `None` with `--skip-browser`.
    pub page_browser: Option<BrowserScale>,
    pub connect_concurrency: usize,
}

impl Args {
    pub fn scale(&self) -> Result<Scale> {
        let quick = self.quick;
        let k = &self.knobs;
        let pick = |given: Option<usize>, quick_value: usize, full: usize| {
            given.unwrap_or(if quick { quick_value } else { full })
        };
        let secs = |given: Option<Duration>, quick_value: f64, full: f64| {
            given.map_or(if quick { quick_value } else { full }, |d| d.as_secs_f64())
        };
        let scale = Scale {
            runs: self.runs,
            fanout_clients: pick(k.fanout_clients, 50, 1_000),
            fanout_senders: pick(k.fanout_senders, 5, 100),
            fanout_rate: k.fanout_rate.unwrap_or(1.0),
            fanout_warmup_secs: secs(k.fanout_warmup, 1.0, 5.0),
            fanout_duration_secs: secs(k.fanout_duration, 2.0, 20.0),
            rate_clients: pick(k.rate_clients, 50, 1_000),
            rate_senders: pick(k.rate_senders, 5, 100),
            rate_steps: k.rate_steps.clone().unwrap_or_else(|| {
                if quick {
                    vec![1.0, 8.0, 64.0]
                } else {
                    vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]
                }
            }),
            rate_warmup_secs: secs(k.rate_warmup, 1.0, 2.0),
            rate_duration_secs: secs(k.rate_duration, 2.0, 5.0),
            rate_max_p99_ms: k.rate_max_p99.unwrap_or(50.0),
            rate_runs: k.rate_runs.unwrap_or(1),
            idle_clients: pick(k.idle_clients, 200, 10_000),
            idle_hold_secs: secs(k.idle_hold, 1.0, 3.0),
            storm_clients: pick(k.storm_clients, 200, 10_000),
            storm_repeat: k.storm_repeat.unwrap_or(5),
            page_browser: (!k.skip_browser).then(|| BrowserScale {
                chromium: k
                    .chromium
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(browser::DEFAULT_CHROMIUM)),
                stored: k.page_stored.unwrap_or(50),
                lines: k.page_lines.clone().unwrap_or_else(|| {
                    if quick {
                        vec![100]
                    } else {
                        vec![100, 500]
                    }
                }),
                held: pick(k.page_held, 300, 2_000),
                batch: pick(k.page_batch, 20, 100),
            }),
            connect_concurrency: k.connect_concurrency.unwrap_or(200),
        };
        ensure!(
            scale.fanout_senders <= scale.fanout_clients,
            "--fanout-senders ({}) cannot be more than --fanout-clients ({})",
            scale.fanout_senders,
            scale.fanout_clients
        );
        ensure!(
            scale.rate_senders <= scale.rate_clients,
            "--rate-senders ({}) cannot be more than --rate-clients ({})",
            scale.rate_senders,
            scale.rate_clients
        );
        ensure!(
            scale.fanout_duration_secs > 0.0 && scale.rate_duration_secs > 0.0,
            "measured windows must be longer than 0 s"
        );
        ensure!(
            !scale.rate_steps.is_empty()
                && scale.rate_steps.windows(2).all(|pair| pair[0] < pair[1]),
            "--rate-steps must be rising: {:?}",
            scale.rate_steps
        );
        ensure!(
            scale.rate_max_p99_ms > 0.0 && scale.rate_max_p99_ms.is_finite(),
            "--rate-max-p99 must be a positive number of milliseconds"
        );
        if let Some(browser) = &scale.page_browser {
            ensure!(
                !browser.lines.is_empty() || browser.held > 0,
                "--page-lines is empty and --page-held is 0: no batch of messages to measure"
            );
        }
        Ok(scale)
    }

    /// The scenarios to run, in the report's order.
    pub fn scenarios(&self) -> Vec<Scenario> {
        Scenario::ALL
            .into_iter()
            .filter(|scenario| self.only.is_empty() || self.only.contains(scenario))
            .collect()
    }
}

/// Everything `--json` writes.
#[derive(Debug, Serialize)]
struct RawReport<'a> {
    header: &'a [(String, String)],
    scale: &'a Scale,
    scenarios: &'a [Scenario],
    runs: &'a [RawRun],
    page: Option<&'a PageRaw>,
}

/// What a finished comparison found.
pub struct Outcome {
    pub markdown: String,
    /// Runs that could not be done (server did not start, run failed, page
    /// files or `GET /` missing).
    pub failed_runs: usize,
}

pub const TITLE: &str = "Parley vs Node: performance comparison";

/// Runs the comparison `args` asks for and writes its report; the Markdown
/// also comes back to be printed.
pub async fn run(args: &Args, command_line: &str) -> Result<Outcome> {
    let scale = args.scale()?;
    let scenarios = args.scenarios();
    let repo = args
        .repo
        .canonicalize()
        .with_context(|| format!("--repo {}", args.repo.display()))?;
    ensure!(
        repo.join("Cargo.toml").is_file(),
        "{} is not the repository root (no Cargo.toml)",
        repo.display()
    );
    // Before any server starts: they inherit the raised limit, and Node and
    // Parley need a file per connection too.
    let files = crate::connect::raise_open_file_limit().context("raising the open-file limit")?;
    let most = scale
        .idle_clients
        .max(scale.storm_clients)
        .max(scale.fanout_clients)
        .max(scale.rate_clients) as u64;
    ensure!(
        most + 100 <= files,
        "{most} connections need more open files than allowed ({files}); raise ulimit -Hn"
    );

    let launcher = Launcher::new(&repo)?;
    launcher.preflight()?;
    let started = SystemTime::now();
    let clock = std::time::Instant::now();
    let mut runner = Runner::new(&launcher, scale.connect_concurrency);
    let mut sections: Vec<Section> = Vec::new();
    let mut page_raw = None;
    let mut markdown = String::new();
    for (index, &scenario) in scenarios.iter().enumerate() {
        eprintln!("compare: scenario {scenario:?}");
        let section = match scenario {
            Scenario::Fanout => vec![scenarios::fanout(&mut runner, &scale).await],
            Scenario::Rate => vec![scenarios::rate(&mut runner, &scale).await],
            Scenario::Idle => vec![scenarios::idle(&mut runner, &scale).await],
            Scenario::Storm => vec![scenarios::storm(&mut runner, &scale).await],
            Scenario::Page => {
                let (page_sections, raw) = scenarios::page(&mut runner, &repo, &scale).await;
                page_raw = Some(raw);
                page_sections
            }
        };
        sections.extend(section);
        let finished = index + 1 == scenarios.len();
        let elapsed = finished.then(|| clock.elapsed().as_secs_f64());
        let mut header = meta::header(&repo, command_line, started, elapsed);
        if !finished {
            header.push((
                "status".to_owned(),
                format!(
                    "incomplete: {} of {} scenarios done",
                    index + 1,
                    scenarios.len()
                ),
            ));
        }
        markdown = markdown::render(TITLE, &header, &sections);
        if let Some(path) = &args.out {
            std::fs::write(path, &markdown)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        if let Some(path) = &args.json {
            write_json(
                path,
                &RawReport {
                    header: &header,
                    scale: &scale,
                    scenarios: &scenarios,
                    runs: &runner.raw,
                    page: page_raw.as_ref(),
                },
            )?;
        }
    }
    launcher.clean_up();
    Ok(Outcome {
        markdown,
        failed_runs: runner.failed_runs,
    })
}

fn write_json(path: &Path, report: &RawReport<'_>) -> Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    serde_json::to_writer_pretty(BufWriter::new(file), report)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn quick_changes_the_defaults_but_explicit_flags_win() {
        let full = Args::try_parse_from(["compare"]).unwrap();
        let scale = full.scale().unwrap();
        assert_eq!(scale.runs, 3);
        assert_eq!((scale.fanout_clients, scale.fanout_senders), (1_000, 100));
        assert_eq!(scale.rate_steps.len(), 7);
        assert_eq!((scale.idle_clients, scale.storm_clients), (10_000, 10_000));
        assert_eq!(full.scenarios(), Scenario::ALL);

        let quick = Args::try_parse_from([
            "compare",
            "--quick",
            "--runs",
            "1",
            "--idle-clients",
            "300",
            "--only",
            "idle,fanout",
            "--only",
            "page",
        ])
        .unwrap();
        let scale = quick.scale().unwrap();
        assert_eq!(scale.runs, 1);
        assert_eq!(scale.fanout_clients, 50);
        assert_eq!(scale.idle_clients, 300);
        assert_eq!(scale.fanout_duration_secs, 2.0);
        assert_eq!(
            quick.scenarios(),
            [Scenario::Fanout, Scenario::Idle, Scenario::Page]
        );
    }

    #[test]
    fn nonsense_scales_are_refused() {
        for args in [
            &["compare", "--fanout-senders", "2000"][..],
            &["compare", "--rate-steps", "4,2"],
            &["compare", "--rate-max-p99", "0"],
        ] {
            let parsed = Args::try_parse_from(args).unwrap();
            assert!(parsed.scale().is_err(), "{args:?}");
        }
        assert!(Args::try_parse_from(["compare", "--runs", "0"]).is_err());
        assert!(Args::try_parse_from(["compare", "--only", "nope"]).is_err());
    }
}
