//! The scenarios: each runs loadgen's modes in-process against a fresh
//! server per run, Parley's and Node's runs alternating, and turns the
//! reports into a [`Section`].

use std::{net::SocketAddr, time::Duration};

use serde::Serialize;
use tokio::time::Instant;

use super::{
    browser::{self, BrowserReport},
    markdown::{number, Row, Section},
    page::{self, PageFile},
    servers::{Launcher, ServerKind, BOTH},
    stats::{median, Rule, Target},
    Scale,
};
use crate::{
    config::{Cli, CommonArgs, FanoutArgs, IdleArgs, Mode, StormArgs},
    report::{FanoutReport, IdleReport, Report, StormReport},
};

/// Pause between runs, so one run's teardown (sockets closing, memory
/// being returned) does not overlap the next.
const COOLDOWN: Duration = Duration::from_millis(500);

/// Time a run may take beyond what its schedule says: connecting, settling,
/// senders catching up, closing.
const DEADLINE_SLACK: Duration = Duration::from_secs(120);

/// How long receivers listen after the last send in fanout and rate runs.
const DRAIN: Duration = Duration::from_secs(2);

/// Deliveries a rate step must reach, as a fraction of those expected.
const MIN_DELIVERED: f64 = 0.99;

pub const P99_TARGET: Target = Target::new(Rule::AtMost(6.0), "≤ 6 ms");
pub const USER_CPU_TARGET: Target = Target::new(Rule::RatioAtMost(0.25), "≤ 1/4 of Node");
pub const TOTAL_CPU_TARGET: Target = Target::new(Rule::RatioAtMost(2.0 / 3.0), "≤ 2/3 of Node");
pub const NOTHING_LOST: Target = Target::new(Rule::AtMost(0.0), "0");
pub const RATE_TARGET: Target = Target::new(Rule::RatioAtLeast(3.0), "≥ 3 × Node");
pub const IDLE_TARGET: Target = Target::new(Rule::AtMost(4.0), "≤ 4 KiB");
pub const STORM_TARGET: Target = Target::new(Rule::Below(50.0), "< 50 ms");
pub const PAGE_TARGET: Target = Target::new(Rule::AtMost(160.0), "≤ 160 KiB");

/// One run as it happened, for `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct RawRun {
    pub scenario: &'static str,
    pub server: ServerKind,
    /// Counted from 1.
    pub run: usize,
    /// Messages per second per sender, in the rate scenario.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    pub secs: f64,
    pub report: Option<Report>,
    pub error: Option<String>,
    pub warning: Option<String>,
}

/// Starts a server per run, runs loadgen against it, and keeps every run.
pub struct Runner<'a> {
    launcher: &'a Launcher,
    connect_concurrency: usize,
    pub raw: Vec<RawRun>,
    pub failed_runs: usize,
    /// Failures and warnings not yet put in a section.
    problems: Vec<String>,
}

impl<'a> Runner<'a> {
    pub fn new(launcher: &'a Launcher, connect_concurrency: usize) -> Self {
        Self {
            launcher,
            connect_concurrency,
            raw: Vec::new(),
            failed_runs: 0,
            problems: Vec::new(),
        }
    }

    /// One run: a fresh server, one loadgen mode, the server stopped.
    async fn measure(
        &mut self,
        scenario: &'static str,
        kind: ServerKind,
        run: usize,
        rate: Option<f64>,
        mode: Mode,
        deadline: Duration,
    ) -> Option<Report> {
        let label = match rate {
            Some(rate) => format!("{scenario} {} run {run} at {rate} msg/s", kind.name()),
            None => format!("{scenario} {} run {run}", kind.name()),
        };
        eprintln!("compare: {label}");
        let started = Instant::now();
        let mut warning = None;
        let result = match self.launcher.start(kind).await {
            Err(err) => Err(err),
            Ok(server) => {
                let cli = Cli {
                    common: common_args(
                        server.addr(),
                        server.pid(),
                        self.connect_concurrency,
                        deadline,
                    ),
                    mode,
                };
                let report = crate::run(&cli).await;
                if let Err(err) = server.stop().await {
                    warning = Some(format!("{err:#}"));
                }
                report
            }
        };
        let secs = started.elapsed().as_secs_f64();
        tokio::time::sleep(COOLDOWN).await;

        if let Some(warning) = &warning {
            eprintln!("compare: {label}: {warning}");
            self.problems
                .push(format!("{label}: {}", one_line(warning)));
        }
        let error = result.as_ref().err().map(|err| format!("{err:#}"));
        match &error {
            Some(error) => {
                eprintln!("compare: {label} failed: {error}");
                self.failed_runs += 1;
                self.problems
                    .push(format!("{label} failed: {}", one_line(error)));
            }
            None => eprintln!("compare: {label} done in {secs:.1} s"),
        }
        let report = result.ok();
        self.raw.push(RawRun {
            scenario,
            server: kind,
            run,
            rate,
            secs,
            report: report.clone(),
            error,
            warning,
        });
        report
    }

    fn take_problems(&mut self) -> Vec<String> {
        std::mem::take(&mut self.problems)
    }
}

fn plural(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

fn runs(count: usize) -> String {
    plural(count, "run", "runs")
}

/// One clock tick of CPU time spread over a run's deliveries, in µs: how
/// finely `/proc` can tell the CPU per delivery apart at this scale.
fn cpu_resolution_us(delivered: u64) -> Option<f64> {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let tick_secs = 1.0 / if ticks > 0 { ticks as f64 } else { 100.0 };
    (delivered > 0).then(|| tick_secs * 1e6 / delivered as f64)
}

/// Most of an error on one line, for a bullet in the report (the full text
/// is in the JSON).
fn one_line(text: &str) -> String {
    const MAX_CHARS: usize = 400;
    let joined = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" / ");
    if joined.chars().count() > MAX_CHARS {
        let cut: String = joined.chars().take(MAX_CHARS).collect();
        format!("{cut}…")
    } else {
        joined
    }
}

fn common_args(
    addr: SocketAddr,
    pid: u32,
    connect_concurrency: usize,
    deadline: Duration,
) -> CommonArgs {
    CommonArgs {
        addr: vec![addr],
        path: "/ws".to_owned(),
        connect_concurrency,
        connect_timeout: Duration::from_secs(10),
        source_addrs: None,
        server_pid: vec![pid],
        json: None,
        assert_clean: false,
        deadline,
    }
}

/// Every run's report of one kind, per server (`[Parley, Node]`).
type PerServer<T> = [Vec<Option<T>>; 2];

/// A row with one value per run for both servers.
fn row<T>(
    measure: &str,
    decimals: usize,
    results: &PerServer<T>,
    value: impl Fn(&T) -> Option<f64>,
    target: Option<Target>,
) -> Row {
    let pick = |runs: &Vec<Option<T>>| -> Vec<Option<f64>> {
        runs.iter()
            .map(|run| run.as_ref().and_then(&value))
            .collect()
    };
    Row {
        measure: measure.to_owned(),
        decimals,
        parley: pick(&results[0]),
        node: Some(pick(&results[1])),
        target,
        show_runs: true,
    }
}

fn server_index(kind: ServerKind) -> usize {
    BOTH.iter()
        .position(|&k| k == kind)
        .expect("BOTH holds every kind")
}

fn fanout_args(scale: &Scale) -> FanoutArgs {
    FanoutArgs {
        clients: scale.fanout_clients,
        senders: scale.fanout_senders,
        rate: scale.fanout_rate,
        warmup: Duration::from_secs_f64(scale.fanout_warmup_secs),
        duration: Duration::from_secs_f64(scale.fanout_duration_secs),
        drain: DRAIN,
        payload_bytes: 0,
        rooms: None,
    }
}

fn fanout_deadline(args: &FanoutArgs) -> Duration {
    args.warmup + args.duration + args.drain + DEADLINE_SLACK
}

/// Deliveries per second a fanout asks for.
fn expected_per_sec(clients: usize, senders: usize, rate: f64) -> f64 {
    senders as f64 * rate * (clients as f64 - 1.0)
}

pub async fn fanout(runner: &mut Runner<'_>, scale: &Scale) -> Section {
    let args = fanout_args(scale);
    let mut results: PerServer<FanoutReport> = Default::default();
    for run in 1..=scale.runs {
        for kind in BOTH {
            let report = runner
                .measure(
                    "fanout",
                    kind,
                    run,
                    None,
                    Mode::Fanout(args.clone()),
                    fanout_deadline(&args),
                )
                .await;
            results[server_index(kind)].push(report.and_then(|report| match report {
                Report::Fanout(report) => Some(report),
                _ => None,
            }));
        }
    }
    fanout_section(scale, &results, runner.take_problems())
}

fn lost(report: &FanoutReport) -> u64 {
    report.gaps + report.duplicates + report.missing + report.errors
}

pub fn fanout_section(
    scale: &Scale,
    results: &PerServer<FanoutReport>,
    mut notes: Vec<String>,
) -> Section {
    let per = |pick: fn(&crate::report::PerDelivery) -> f64| {
        move |report: &FanoutReport| report.server_us_per_delivery.as_ref().map(pick)
    };
    let rows = vec![
        row(
            "deliveries/s",
            0,
            results,
            |r| Some(r.deliveries_per_sec),
            None,
        ),
        row(
            "latency p50 (ms)",
            2,
            results,
            |r| Some(r.latency_ms.p50),
            None,
        ),
        row(
            "latency p99 (ms)",
            2,
            results,
            |r| Some(r.latency_ms.p99),
            Some(P99_TARGET),
        ),
        row(
            "latency max (ms)",
            2,
            results,
            |r| Some(r.latency_ms.max),
            None,
        ),
        row(
            "gaps + duplicates + missing + errors",
            0,
            results,
            |r| Some(lost(r) as f64),
            Some(NOTHING_LOST),
        ),
        row(
            "server CPU user (µs/delivery)",
            3,
            results,
            per(|p| p.user),
            Some(USER_CPU_TARGET),
        ),
        row(
            "server CPU system (µs/delivery)",
            3,
            results,
            per(|p| p.system),
            None,
        ),
        row(
            "server CPU total (µs/delivery)",
            3,
            results,
            per(|p| p.total),
            Some(TOTAL_CPU_TARGET),
        ),
    ];
    let fewest = results
        .iter()
        .flatten()
        .flatten()
        .map(|report| report.delivered)
        .min();
    if let Some(resolution) = fewest.and_then(cpu_resolution_us) {
        notes.push(format!(
            "Server CPU comes from /proc in clock ticks: one tick is {resolution:.3} µs per \
             delivery at this scale."
        ));
    }
    for (kind, runs) in BOTH.iter().zip(results) {
        for (index, report) in runs.iter().enumerate() {
            if let Some(report) = report.as_ref().filter(|r| lost(r) > 0) {
                notes.push(format!(
                    "{} run {}: {} gaps, {} duplicates, {} missing, errors: {}",
                    kind.name(),
                    index + 1,
                    report.gaps,
                    report.duplicates,
                    report.missing,
                    report.error_kinds
                ));
            }
        }
    }
    Section {
        title: format!(
            "fanout: {} clients, {} senders × {} msg/s",
            number(scale.fanout_clients as f64, 0),
            scale.fanout_senders,
            scale.fanout_rate
        ),
        setup: vec![format!(
            "{} clients, the first {} of them each sending {} msg/s, everyone receiving \
             ({} deliveries/s expected); {} s warm-up, {} s measured, {} s drain. {} per \
             server. Latency runs from each message's scheduled send time to its arrival; \
             server CPU is user and system time over the measured window divided by the \
             messages delivered in it.",
            number(scale.fanout_clients as f64, 0),
            scale.fanout_senders,
            scale.fanout_rate,
            number(
                expected_per_sec(
                    scale.fanout_clients,
                    scale.fanout_senders,
                    scale.fanout_rate
                ),
                0
            ),
            scale.fanout_warmup_secs,
            scale.fanout_duration_secs,
            DRAIN.as_secs_f64(),
            runs(scale.runs)
        )],
        rows,
        notes,
    }
}

/// One step of a rate ladder.
#[derive(Debug, Clone)]
pub struct Step {
    /// Messages per second per sender.
    pub rate: f64,
    pub deliveries_per_sec: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Why the step failed, if it did.
    pub verdict: Result<(), String>,
}

impl Step {
    fn passed(&self) -> bool {
        self.verdict.is_ok()
    }
}

/// Whether a rate step counts: p99 under `max_p99_ms`, nothing lost,
/// repeated or failed, and at least 99% of the expected deliveries.
pub fn judge(report: &FanoutReport, max_p99_ms: f64) -> Result<(), String> {
    let mut why = Vec::new();
    if report.latency_ms.p99 >= max_p99_ms {
        why.push(format!("p99 {:.1} ms", report.latency_ms.p99));
    }
    for (count, what) in [
        (report.gaps, "gaps"),
        (report.missing, "missing"),
        (report.duplicates, "duplicates"),
        (report.errors, "errors"),
    ] {
        if count > 0 {
            why.push(format!("{count} {what}"));
        }
    }
    if report.expected == 0 {
        why.push("nothing was sent".to_owned());
    } else if (report.delivered as f64) < MIN_DELIVERED * report.expected as f64 {
        why.push(format!(
            "{:.1}% delivered",
            100.0 * report.delivered as f64 / report.expected as f64
        ));
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(why.join(", "))
    }
}

/// The highest deliveries/s among the steps that passed, and its rate.
pub fn best_step(ladder: &[Step]) -> Option<&Step> {
    ladder
        .iter()
        .filter(|step| step.passed())
        .filter(|step| step.deliveries_per_sec.is_some())
        .max_by(|a, b| {
            a.deliveries_per_sec
                .unwrap_or_default()
                .total_cmp(&b.deliveries_per_sec.unwrap_or_default())
        })
}

pub async fn rate(runner: &mut Runner<'_>, scale: &Scale) -> Section {
    let base = FanoutArgs {
        clients: scale.rate_clients,
        senders: scale.rate_senders,
        rate: 1.0,
        warmup: Duration::from_secs_f64(scale.rate_warmup_secs),
        duration: Duration::from_secs_f64(scale.rate_duration_secs),
        drain: DRAIN,
        payload_bytes: 0,
        rooms: None,
    };
    let mut ladders: [Vec<Vec<Step>>; 2] = Default::default();
    for pass in 1..=scale.rate_runs {
        for kind in BOTH {
            let mut ladder = Vec::new();
            for &rate in &scale.rate_steps {
                let args = FanoutArgs {
                    rate,
                    ..base.clone()
                };
                let report = runner
                    .measure(
                        "rate",
                        kind,
                        pass,
                        Some(rate),
                        Mode::Fanout(args.clone()),
                        fanout_deadline(&args),
                    )
                    .await;
                let step = match report {
                    Some(Report::Fanout(report)) => Step {
                        rate,
                        deliveries_per_sec: Some(report.deliveries_per_sec),
                        p99_ms: Some(report.latency_ms.p99),
                        verdict: judge(&report, scale.rate_max_p99_ms),
                    },
                    _ => Step {
                        rate,
                        deliveries_per_sec: None,
                        p99_ms: None,
                        verdict: Err("the run failed".to_owned()),
                    },
                };
                let passed = step.passed();
                ladder.push(step);
                if !passed {
                    break;
                }
            }
            ladders[server_index(kind)].push(ladder);
        }
    }
    rate_section(scale, &ladders, runner.take_problems())
}

pub fn rate_section(
    scale: &Scale,
    ladders: &[Vec<Vec<Step>>; 2],
    mut notes: Vec<String>,
) -> Section {
    let pick = |value: fn(&Step) -> Option<f64>| {
        let per_server = |passes: &Vec<Vec<Step>>| -> Vec<Option<f64>> {
            passes
                .iter()
                .map(|ladder| best_step(ladder).and_then(value))
                .collect()
        };
        (per_server(&ladders[0]), per_server(&ladders[1]))
    };
    let (parley_best, node_best) = pick(|step| step.deliveries_per_sec);
    let (parley_rate, node_rate) = pick(|step| Some(step.rate));
    let rows = vec![
        Row {
            measure: format!(
                "highest deliveries/s with p99 < {} ms and nothing lost",
                scale.rate_max_p99_ms
            ),
            decimals: 0,
            parley: parley_best,
            node: Some(node_best),
            target: Some(RATE_TARGET),
            show_runs: true,
        },
        Row {
            measure: "at msg/s per sender".to_owned(),
            decimals: 0,
            parley: parley_rate,
            node: Some(node_rate),
            target: None,
            show_runs: true,
        },
    ];
    let top = scale.rate_steps.last().copied().unwrap_or_default();
    for (kind, passes) in BOTH.iter().zip(ladders) {
        for (index, ladder) in passes.iter().enumerate() {
            let steps: Vec<String> = ladder
                .iter()
                .map(|step| {
                    let mut text = format!("{} msg/s", step.rate);
                    if let Some(per_sec) = step.deliveries_per_sec {
                        let _ = std::fmt::Write::write_fmt(
                            &mut text,
                            format_args!(" → {}/s", number(per_sec, 0)),
                        );
                    }
                    if let Some(p99) = step.p99_ms {
                        let _ = std::fmt::Write::write_fmt(
                            &mut text,
                            format_args!(", p99 {p99:.2} ms"),
                        );
                    }
                    match &step.verdict {
                        Ok(()) => text.push_str(" ✓"),
                        Err(why) => {
                            let _ =
                                std::fmt::Write::write_fmt(&mut text, format_args!(" ✗ ({why})"));
                        }
                    }
                    text
                })
                .collect();
            notes.push(format!(
                "{} pass {}: {}",
                kind.name(),
                index + 1,
                steps.join("; ")
            ));
            let all_passed =
                ladder.len() == scale.rate_steps.len() && ladder.last().is_some_and(Step::passed);
            if all_passed {
                notes.push(format!(
                    "{} pass {} passed every step up to {top} msg/s: its figure is a floor, \
                     not its limit.",
                    kind.name(),
                    index + 1
                ));
            }
        }
    }
    Section {
        title: format!(
            "rate: {} clients, {} senders, rising rate",
            number(scale.rate_clients as f64, 0),
            scale.rate_senders
        ),
        setup: vec![format!(
            "{} clients, {} senders; each sender's rate steps through {} msg/s, each step a \
             fanout run on a fresh server with {} s warm-up and {} s measured, stopping at the \
             first step with p99 ≥ {} ms, any gap, missing or duplicate message or error, or \
             under {:.0}% of the expected deliveries. {} per server \
             (`--rate-runs`). The load generator shares the CPUs with the server, so at high \
             rates it can be the limit.",
            number(scale.rate_clients as f64, 0),
            scale.rate_senders,
            scale
                .rate_steps
                .iter()
                .map(|rate| rate.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            scale.rate_warmup_secs,
            scale.rate_duration_secs,
            scale.rate_max_p99_ms,
            MIN_DELIVERED * 100.0,
            plural(scale.rate_runs, "pass", "passes"),
        )],
        rows,
        notes,
    }
}

pub async fn idle(runner: &mut Runner<'_>, scale: &Scale) -> Section {
    let args = IdleArgs {
        clients: scale.idle_clients,
        hold: Duration::from_secs_f64(scale.idle_hold_secs),
    };
    let deadline = args.hold + DEADLINE_SLACK;
    let mut results: PerServer<IdleReport> = Default::default();
    for run in 1..=scale.runs {
        for kind in BOTH {
            let report = runner
                .measure("idle", kind, run, None, Mode::Idle(args.clone()), deadline)
                .await;
            results[server_index(kind)].push(report.and_then(|report| match report {
                Report::Idle(report) => Some(report),
                _ => None,
            }));
        }
    }
    idle_section(scale, &results, runner.take_problems())
}

pub fn idle_section(scale: &Scale, results: &PerServer<IdleReport>, notes: Vec<String>) -> Section {
    let mib = |kib: u64| kib as f64 / 1024.0;
    let rows = vec![
        row(
            "server RSS per connection (KiB)",
            2,
            results,
            |r| r.server.as_ref().map(|s| s.rss_kib_per_connection),
            Some(IDLE_TARGET),
        ),
        row(
            "server RSS before connecting (MiB)",
            1,
            results,
            |r| r.server.as_ref().map(|s| mib(s.rss_before_kib)),
            None,
        ),
        row(
            "server RSS, all connected (MiB)",
            1,
            results,
            |r| r.server.as_ref().map(|s| mib(s.rss_idle_kib)),
            None,
        ),
        row(
            "connect time (s)",
            2,
            results,
            |r| Some(r.connect_secs),
            None,
        ),
        row(
            "errors",
            0,
            results,
            |r| Some(r.errors as f64),
            Some(NOTHING_LOST),
        ),
    ];
    Section {
        title: format!("idle: {} connections", number(scale.idle_clients as f64, 0)),
        setup: vec![format!(
            "{} WebSocket connections opened and held idle for {} s. RSS per connection is \
             (RSS with all connected − RSS before connecting) ÷ connections, sampled 1 s \
             after the last connection opened. {} per server.",
            number(scale.idle_clients as f64, 0),
            scale.idle_hold_secs,
            runs(scale.runs)
        )],
        rows,
        notes,
    }
}

pub async fn storm(runner: &mut Runner<'_>, scale: &Scale) -> Section {
    let args = StormArgs {
        clients: scale.storm_clients,
        repeat: scale.storm_repeat,
        pause: Duration::from_secs(1),
        round_timeout: Duration::from_secs(10),
    };
    let rounds = u32::try_from(args.repeat).unwrap_or(u32::MAX);
    let deadline = (args.pause + args.round_timeout) * rounds + DEADLINE_SLACK;
    let mut results: PerServer<StormReport> = Default::default();
    for run in 1..=scale.runs {
        for kind in BOTH {
            let report = runner
                .measure(
                    "storm",
                    kind,
                    run,
                    None,
                    Mode::Storm(args.clone()),
                    deadline,
                )
                .await;
            results[server_index(kind)].push(report.and_then(|report| match report {
                Report::Storm(report) => Some(report),
                _ => None,
            }));
        }
    }
    storm_section(scale, &results, runner.take_problems())
}

pub fn storm_section(
    scale: &Scale,
    results: &PerServer<StormReport>,
    notes: Vec<String>,
) -> Section {
    let rows = vec![
        row(
            "last arrival, median of rounds (ms)",
            2,
            results,
            |r| r.median_last_ms,
            Some(STORM_TARGET),
        ),
        row(
            "p50 arrival, median of rounds (ms)",
            2,
            results,
            |r| {
                median(
                    &r.rounds
                        .iter()
                        .map(|round| round.p50_ms)
                        .collect::<Vec<_>>(),
                )
            },
            None,
        ),
        row(
            "rounds not received by everyone",
            0,
            results,
            |r| {
                Some(
                    r.rounds
                        .iter()
                        .filter(|round| round.received < round.receivers)
                        .count() as f64,
                )
            },
            Some(NOTHING_LOST),
        ),
        row(
            "errors",
            0,
            results,
            |r| Some(r.errors as f64),
            Some(NOTHING_LOST),
        ),
    ];
    Section {
        title: format!(
            "storm: one message to {} connections",
            number(scale.storm_clients as f64, 0)
        ),
        setup: vec![format!(
            "{} connections; one of them sends a message to all the others, {} times, 1 s \
             apart. Per run: the median over rounds of the time until the last receiver had it \
             (and of the median arrival); the table shows the median over {} per server.",
            number(scale.storm_clients as f64, 0),
            scale.storm_repeat,
            runs(scale.runs)
        )],
        rows,
        notes,
    }
}

/// The page sizes and browser runs, for `--json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PageRaw {
    pub files: Vec<PageFile>,
    /// Raw and brotli bytes of `GET /`, per server.
    pub html: Vec<(ServerKind, Option<(u64, u64)>)>,
    /// Every run of the page in Chromium.
    pub browser: Vec<BrowserRun>,
}

/// One run of `bench/page/measure.mjs`, for `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct BrowserRun {
    pub server: ServerKind,
    /// Counted from 1.
    pub run: usize,
    pub secs: f64,
    pub report: Option<BrowserReport>,
    pub error: Option<String>,
}

/// The page's sizes, then (unless `--skip-browser`) the page in Chromium:
/// a fresh server per run, Parley's and Node's runs alternating.
pub async fn page(
    runner: &mut Runner<'_>,
    repo: &std::path::Path,
    scale: &Scale,
) -> (Vec<Section>, PageRaw) {
    let (weight, mut raw) = page_weight(runner, repo).await;
    let mut sections = vec![weight];
    let Some(browser_scale) = &scale.page_browser else {
        return (sections, raw);
    };
    let launcher = runner.launcher;
    let mut notes = Vec::new();
    let mut results: browser::PerServer = Default::default();
    match browser::preflight(launcher.repo(), browser_scale) {
        Err(err) => {
            runner.failed_runs += 1;
            notes.push(format!(
                "the browser part could not run: {}",
                one_line(&format!("{err:#}"))
            ));
        }
        Ok(()) => {
            for run in 1..=scale.runs {
                for kind in BOTH {
                    let label = format!("page in Chromium {} run {run}", kind.name());
                    eprintln!("compare: {label}");
                    let started = Instant::now();
                    let result = match launcher.start_fresh(kind, run).await {
                        Err(err) => Err(err),
                        Ok(server) => {
                            let (repo, dir, browser_scale) = (
                                launcher.repo().to_owned(),
                                launcher.log_dir().to_owned(),
                                browser_scale.clone(),
                            );
                            let addr = server.addr();
                            let measured = tokio::task::spawn_blocking(move || {
                                browser::measure(&repo, &dir, &browser_scale, addr, kind, run)
                            })
                            .await
                            .unwrap_or_else(|err| {
                                Err(anyhow::anyhow!("the browser run panicked: {err}"))
                            });
                            if let Err(err) = server.stop().await {
                                notes.push(format!("{label}: {}", one_line(&format!("{err:#}"))));
                            }
                            measured
                        }
                    };
                    let secs = started.elapsed().as_secs_f64();
                    tokio::time::sleep(COOLDOWN).await;
                    let error = result.as_ref().err().map(|err| format!("{err:#}"));
                    match &error {
                        Some(error) => {
                            eprintln!("compare: {label} failed: {error}");
                            runner.failed_runs += 1;
                            notes.push(format!("{label} failed: {}", one_line(error)));
                        }
                        None => eprintln!("compare: {label} done in {secs:.1} s"),
                    }
                    let report = result.ok();
                    results[browser::index(kind)].push(report.clone());
                    raw.browser.push(BrowserRun {
                        server: kind,
                        run,
                        secs,
                        report,
                        error,
                    });
                }
            }
        }
    }
    sections.push(browser::load_section(browser_scale, &results, notes));
    sections.push(browser::messages_section(
        browser_scale,
        &results,
        Vec::new(),
    ));
    (sections, raw)
}

async fn page_weight(runner: &mut Runner<'_>, repo: &std::path::Path) -> (Section, PageRaw) {
    let launcher = runner.launcher;
    let mut notes = Vec::new();
    let mut raw = PageRaw::default();
    let repo_owned = repo.to_owned();
    match tokio::task::spawn_blocking(move || page::pkg_files(&repo_owned)).await {
        Ok(Ok(files)) => raw.files = files,
        Ok(Err(err)) => {
            runner.failed_runs += 1;
            notes.push(format!("no page files: {}", one_line(&format!("{err:#}"))));
        }
        Err(err) => {
            runner.failed_runs += 1;
            notes.push(format!("measuring the page files panicked: {err}"));
        }
    }
    for kind in BOTH {
        eprintln!("compare: page {}", kind.name());
        let html = match launcher.start(kind).await {
            Err(err) => Err(err),
            Ok(server) => {
                let addr = server.addr();
                let fetched = tokio::task::spawn_blocking(move || {
                    let body = page::fetch_page(addr)?;
                    Ok::<_, anyhow::Error>((body.len() as u64, page::compressed_len(&body)?))
                })
                .await
                .unwrap_or_else(|err| Err(anyhow::anyhow!("fetching the page panicked: {err}")));
                if let Err(err) = server.stop().await {
                    notes.push(format!(
                        "{}: {}",
                        kind.name(),
                        one_line(&format!("{err:#}"))
                    ));
                }
                fetched
            }
        };
        match html {
            Ok(sizes) => raw.html.push((kind, Some(sizes))),
            Err(err) => {
                runner.failed_runs += 1;
                notes.push(format!(
                    "{}: GET / failed: {}",
                    kind.name(),
                    one_line(&format!("{err:#}"))
                ));
                raw.html.push((kind, None));
            }
        }
    }
    (page_section(&raw, notes), raw)
}

pub fn page_section(raw: &PageRaw, mut notes: Vec<String>) -> Section {
    let parley_only = |measure: String, decimals: usize, value: Option<f64>, target| Row {
        measure,
        decimals,
        parley: vec![value],
        node: None,
        target,
        show_runs: false,
    };
    let mut rows = Vec::new();
    for file in &raw.files {
        rows.push(parley_only(
            format!("`{}` raw (bytes)", file.name),
            0,
            Some(file.raw_bytes as f64),
            None,
        ));
        rows.push(parley_only(
            format!("`{}` brotli (bytes)", file.name),
            0,
            Some(file.brotli_bytes as f64),
            None,
        ));
    }
    let total = (!raw.files.is_empty())
        .then(|| raw.files.iter().map(|file| file.brotli_bytes).sum::<u64>() as f64 / 1024.0);
    rows.push(parley_only(
        "wasm + js, brotli (KiB)".to_owned(),
        1,
        total,
        Some(PAGE_TARGET),
    ));
    let html = |kind: ServerKind, pick: fn((u64, u64)) -> u64| -> Vec<Option<f64>> {
        vec![raw
            .html
            .iter()
            .find(|(k, _)| *k == kind)
            .and_then(|(_, sizes)| *sizes)
            .map(|sizes| pick(sizes) as f64)]
    };
    for (measure, pick) in [
        (
            "HTML page `/` raw (bytes)",
            (|s: (u64, u64)| s.0) as fn((u64, u64)) -> u64,
        ),
        ("HTML page `/` brotli (bytes)", |s: (u64, u64)| s.1),
    ] {
        rows.push(Row {
            measure: measure.to_owned(),
            decimals: 0,
            parley: html(ServerKind::Parley, pick),
            node: Some(html(ServerKind::Node, pick)),
            target: None,
            show_runs: false,
        });
    }
    let precompressed = raw.files.iter().filter(|file| file.precompressed).count();
    let how = match precompressed {
        0 => format!(
            "compressed here (brotli crate, quality {}, window 2^{})",
            page::BROTLI_QUALITY,
            page::BROTLI_WINDOW_BITS
        ),
        n if n == raw.files.len() => "the precompressed `.br` files next to them".to_owned(),
        _ => format!(
            "the precompressed `.br` file where there is one, else compressed here (quality {})",
            page::BROTLI_QUALITY
        ),
    };
    notes.insert(
        0,
        "The Node peer has no wasm or JavaScript files: its whole client is the inline HTML \
         page in the rows below."
            .to_owned(),
    );
    Section {
        title: "page: what the browser downloads".to_owned(),
        setup: vec![format!(
            "Every `*.wasm` and `*.js` file in `{}` (the release build); brotli sizes are {how}. \
             The HTML page is the body of `GET /` from a fresh server, without compression; \
             its brotli size is computed the same way.",
            page::PKG_DIR
        )],
        rows,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::Quantiles;

    fn clean_report() -> FanoutReport {
        FanoutReport {
            expected: 1_000,
            delivered: 1_000,
            latency_ms: Quantiles {
                p99: 3.0,
                ..Quantiles::default()
            },
            ..FanoutReport::default()
        }
    }

    #[test]
    fn a_rate_step_needs_low_latency_and_nothing_lost() {
        assert_eq!(judge(&clean_report(), 50.0), Ok(()));
        let slow = FanoutReport {
            latency_ms: Quantiles {
                p99: 50.0,
                ..Quantiles::default()
            },
            ..clean_report()
        };
        assert_eq!(judge(&slow, 50.0), Err("p99 50.0 ms".to_owned()));
        let lossy = FanoutReport {
            missing: 3,
            delivered: 985,
            ..clean_report()
        };
        assert_eq!(
            judge(&lossy, 50.0),
            Err("3 missing, 98.5% delivered".to_owned())
        );
        let idle = FanoutReport {
            expected: 0,
            ..clean_report()
        };
        assert!(judge(&idle, 50.0).is_err());
    }

    #[test]
    fn errors_become_one_bounded_line() {
        assert_eq!(
            one_line("Parley exited (3); its log ends with:\nboom\n\n  again\n"),
            "Parley exited (3); its log ends with: / boom / again"
        );
        let long = one_line(&"x".repeat(1_000));
        assert_eq!(long.chars().count(), 401);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn the_best_step_is_the_fastest_that_passed() {
        let step = |rate: f64, per_sec: f64, ok: bool| Step {
            rate,
            deliveries_per_sec: Some(per_sec),
            p99_ms: Some(1.0),
            verdict: if ok { Ok(()) } else { Err("slow".to_owned()) },
        };
        let ladder = [
            step(1.0, 100.0, true),
            step(2.0, 200.0, true),
            step(4.0, 390.0, false),
        ];
        assert_eq!(best_step(&ladder).map(|s| s.rate), Some(2.0));
        assert!(best_step(&ladder[2..]).is_none());
    }
}
