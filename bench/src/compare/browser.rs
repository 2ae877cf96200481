//! The page in a browser (issue 16, item 7): a cold load of `/` on a slow
//! phone profile, and the main thread's time per incoming message, in
//! Debian's Chromium. [`SCRIPT`] does the measuring (Playwright driving
//! Chromium through CDP, against a server already running) and prints JSON;
//! this module runs it and turns its reports into the report's tables. The
//! script's header says what each number is.

use std::{
    fs::{self, File},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

use super::{
    markdown::{number, Row, Section},
    servers::{log_tail, wait_with_timeout, ServerKind, BOTH},
    stats::{Rule, Target},
};

/// The measuring script, from the repository root.
pub const SCRIPT: &str = "bench/page/measure.mjs";
/// Where Playwright is installed (`scripts/setup.sh`).
pub const PLAYWRIGHT_DIR: &str = "end2end/node_modules/playwright-core";
pub const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

/// How long one run of the script may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(900);

pub const CONNECTED_TARGET: Target = Target::new(Rule::AtMost(1_500.0), "≤ 1,500 ms");
pub const PER_MESSAGE_TARGET: Target = Target::new(Rule::RatioAtMost(2.0), "≤ 2 × plain DOM");
pub const GROWTH_TARGET: Target = Target::new(Rule::AtMost(1.3), "≤ 1.3");

/// What the script is asked to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BrowserScale {
    pub chromium: PathBuf,
    /// Messages stored in the room before the cold load.
    pub stored: usize,
    /// Lines shown for each measured batch, in order.
    pub lines: Vec<usize>,
    /// Lines held scrolled up for the last batch (0: no such batch).
    pub held: usize,
    /// Messages per measured batch.
    pub batch: usize,
}

impl BrowserScale {
    fn script_args(&self, addr: SocketAddr, kind: ServerKind) -> Vec<String> {
        let lines = self
            .lines
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        vec![
            SCRIPT.to_owned(),
            "--url".to_owned(),
            format!("http://{addr}/"),
            "--server".to_owned(),
            kind.name().to_lowercase(),
            "--chromium".to_owned(),
            self.chromium.display().to_string(),
            "--stored".to_owned(),
            self.stored.to_string(),
            "--lines".to_owned(),
            lines,
            "--held".to_owned(),
            self.held.to_string(),
            "--batch".to_owned(),
            self.batch.to_string(),
        ]
    }
}

/// One run of the script, as it prints it (fields it adds later are
/// ignored).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrowserReport {
    pub chromium: String,
    pub stored: u64,
    pub load: LoadReport,
    pub messages: Vec<Batch>,
    pub probe: Option<Batch>,
}

/// The cold load; times in ms from the start of the navigation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadReport {
    pub ready_signal: String,
    pub fcp_ms: Option<f64>,
    pub messages_in_dom_ms: Option<f64>,
    pub messages_painted_ms: Option<f64>,
    pub socket_open_ms: Option<f64>,
    pub connected_ms: Option<f64>,
    pub dom_content_loaded_ms: Option<f64>,
    pub load_ms: Option<f64>,
    pub lines_shown: u64,
    pub transferred_bytes: f64,
    #[serde(default)]
    pub requests: Vec<serde_json::Value>,
}

/// A batch of incoming messages: per-message means of the metrics' deltas,
/// and the heap and DOM nodes after it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Batch {
    pub label: String,
    pub lines_before: u64,
    pub lines_after: u64,
    pub messages: u64,
    pub task_ms: f64,
    pub script_ms: f64,
    pub layout_ms: f64,
    pub style_ms: f64,
    pub devtools_ms: f64,
    /// The main thread's CPU time (ThreadTime), which a busy machine does
    /// not stretch as it does the wall-clock durations.
    #[serde(default)]
    pub thread_cpu_ms: Option<f64>,
    pub js_heap_used_bytes: f64,
    pub nodes: f64,
    pub wall_ms: f64,
    #[serde(default)]
    pub scrolled_up: bool,
    #[serde(default)]
    pub scroll_before: serde_json::Value,
    #[serde(default)]
    pub scroll_after: serde_json::Value,
}

/// Checks that the script can run: the script, Playwright and Chromium are
/// there.
pub fn preflight(repo: &Path, scale: &BrowserScale) -> Result<()> {
    ensure!(
        repo.join(SCRIPT).is_file(),
        "{} is missing",
        repo.join(SCRIPT).display()
    );
    ensure!(
        repo.join(PLAYWRIGHT_DIR).is_dir(),
        "{} is missing: run scripts/setup.sh (it installs end2end's npm packages)",
        repo.join(PLAYWRIGHT_DIR).display()
    );
    ensure!(
        scale.chromium.is_file(),
        "no Chromium at {} (scripts/setup.sh installs Debian's; or pass --chromium, or \
         --skip-browser)",
        scale.chromium.display()
    );
    Ok(())
}

/// Runs the script against the server at `addr`; its JSON goes through
/// `out` (a file in `work_dir`) and its progress to our stderr.
pub fn measure(
    repo: &Path,
    work_dir: &Path,
    scale: &BrowserScale,
    addr: SocketAddr,
    kind: ServerKind,
    run: usize,
) -> Result<BrowserReport> {
    let name = kind.name().to_lowercase();
    let out_path = work_dir.join(format!("page-{name}-{run}.json"));
    let err_path = work_dir.join(format!("page-{name}-{run}.log"));
    let out =
        File::create(&out_path).with_context(|| format!("creating {}", out_path.display()))?;
    let err =
        File::create(&err_path).with_context(|| format!("creating {}", err_path.display()))?;
    let mut child = Command::new("node")
        .args(scale.script_args(addr, kind))
        .current_dir(repo)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .context("starting `node bench/page/measure.mjs`")?;
    let status = match wait_with_timeout(&mut child, RUN_TIMEOUT)? {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{SCRIPT} took over {RUN_TIMEOUT:?}{}", log_tail(&err_path));
        }
    };
    if !status.success() {
        bail!("{SCRIPT} failed ({status}){}", log_tail(&err_path));
    }
    let text =
        fs::read_to_string(&out_path).with_context(|| format!("reading {}", out_path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{SCRIPT} printed unexpected JSON"))
}

/// Every run's report, per server (`[Parley, Node]`).
pub type PerServer = [Vec<Option<BrowserReport>>; 2];

fn values(
    results: &PerServer,
    server: usize,
    value: &impl Fn(&BrowserReport) -> Option<f64>,
) -> Vec<Option<f64>> {
    results[server]
        .iter()
        .map(|run| run.as_ref().and_then(value))
        .collect()
}

fn both(
    measure: String,
    decimals: usize,
    results: &PerServer,
    value: impl Fn(&BrowserReport) -> Option<f64>,
    target: Option<Target>,
) -> Row {
    Row {
        measure,
        decimals,
        parley: values(results, 0, &value),
        node: Some(values(results, 1, &value)),
        target,
        show_runs: true,
    }
}

/// The cold load's table.
pub fn load_section(scale: &BrowserScale, results: &PerServer, mut notes: Vec<String>) -> Section {
    let load = |pick: fn(&LoadReport) -> Option<f64>| move |r: &BrowserReport| pick(&r.load);
    let rows = vec![
        both(
            "first contentful paint (ms)".to_owned(),
            0,
            results,
            load(|l| l.fcp_ms),
            None,
        ),
        Row {
            measure: format!("{} stored messages painted (ms)", scale.stored),
            decimals: 0,
            parley: values(results, 0, &load(|l| l.messages_painted_ms)),
            node: None,
            target: None,
            show_runs: true,
        },
        both(
            "connected, Send works (ms)".to_owned(),
            0,
            results,
            load(|l| l.connected_ms),
            Some(CONNECTED_TARGET),
        ),
        both(
            "WebSocket open (ms)".to_owned(),
            0,
            results,
            load(|l| l.socket_open_ms),
            None,
        ),
        both(
            "load event (ms)".to_owned(),
            0,
            results,
            load(|l| l.load_ms),
            None,
        ),
        both(
            "transferred (KiB)".to_owned(),
            1,
            results,
            load(|l| Some(l.transferred_bytes / 1024.0)),
            None,
        ),
    ];
    if let Some(report) = results.iter().flatten().flatten().next() {
        notes.insert(0, format!("Browser: {}.", report.chromium));
    }
    Section {
        title: "page load: cold `/` on a slow phone".to_owned(),
        setup: vec![format!(
            "`{SCRIPT}` in Chromium ({}) through CDP, a fresh server per run (Parley with a \
             new SQLite store), {} per server. The room first gets {} messages from a \
             WebSocket client (Parley stores them and renders them into the page; the Node \
             peer keeps no history, so its page starts empty). Then `/` is loaded in a new \
             browser context with the cache disabled on a slow phone: 150 ms round trip, \
             1.6 Mbit/s down, 750 kbit/s up (`Network.emulateNetworkConditions`), CPU slowed \
             4× (`Emulation.setCPUThrottlingRate`), 390 × 844 px at 3× (mobile). Times are \
             from the start of the navigation. *Stored messages painted*: first contentful \
             paint if the newest stored message was in the list by then (server-rendered), \
             else the end of the first frame after it was. *Connected, Send works*: for \
             Parley, `main[data-connection=\"online\"]` appears (only once hydrated and \
             welcomed by the server); the Node page marks nothing and can send as soon as \
             its socket is open, so for it this is the socket's `open` event. \
             *Transferred*: the encoded bytes (headers and bodies) of every HTTP response.",
            scale.chromium.display(),
            runs(results),
            scale.stored,
        )],
        rows,
        notes,
    }
}

/// The per-message table.
pub fn messages_section(scale: &BrowserScale, results: &PerServer, notes: Vec<String>) -> Section {
    let reports = || results.iter().flatten().flatten();
    let batches = reports().map(|r| r.messages.len()).max().unwrap_or(0);
    let label = |index: usize| {
        reports()
            .find_map(|r| r.messages.get(index).map(|b| b.label.clone()))
            .unwrap_or_else(|| format!("batch {}", index + 1))
    };
    let mut rows = Vec::new();
    for index in 0..batches {
        let name = label(index);
        let batch =
            move |pick: fn(&Batch) -> f64| move |r: &BrowserReport| r.messages.get(index).map(pick);
        rows.push(both(
            format!("{name}: main thread per message (ms)"),
            2,
            results,
            batch(|b| b.task_ms),
            Some(PER_MESSAGE_TARGET),
        ));
        rows.push(both(
            format!("{name}: main thread CPU per message (ms)"),
            2,
            results,
            move |r: &BrowserReport| r.messages.get(index).and_then(|b| b.thread_cpu_ms),
            None,
        ));
        rows.push(both(
            format!("{name}: script per message (ms)"),
            2,
            results,
            batch(|b| b.script_ms),
            None,
        ));
        rows.push(both(
            format!("{name}: layout + style per message (ms)"),
            2,
            results,
            batch(|b| b.layout_ms + b.style_ms),
            None,
        ));
        rows.push(both(
            format!("{name}: lines shown before the batch"),
            0,
            results,
            batch(|b| b.lines_before as f64),
            None,
        ));
        rows.push(both(
            format!("{name}: JS heap used after (MiB)"),
            2,
            results,
            batch(|b| b.js_heap_used_bytes / (1024.0 * 1024.0)),
            None,
        ));
        rows.push(both(
            format!("{name}: DOM nodes after"),
            0,
            results,
            batch(|b| b.nodes),
            None,
        ));
    }
    if scale.lines.len() >= 2 {
        let (first, last) = (0, scale.lines.len() - 1);
        let growth = move |r: &BrowserReport| {
            let (a, b) = (r.messages.get(first)?, r.messages.get(last)?);
            (a.task_ms > 0.0).then(|| b.task_ms / a.task_ms)
        };
        rows.push(both(
            format!(
                "main thread per message, {} ÷ {} lines",
                scale.lines[last], scale.lines[first]
            ),
            2,
            results,
            growth,
            Some(GROWTH_TARGET),
        ));
    }
    rows.push(both(
        "the probe alone, per wait (ms)".to_owned(),
        2,
        results,
        |r| r.probe.as_ref().map(|p| p.task_ms),
        None,
    ));
    let held = if scale.held > 0 {
        format!(
            ", then scrolled up (the list's scroller set one screen below its top: Parley \
             pages in older history at the very top) with {} lines held",
            number(scale.held as f64, 0)
        )
    } else {
        String::new()
    };
    Section {
        title: "page: main-thread time per incoming message".to_owned(),
        setup: vec![format!(
            "The same runs, no throttling, same 390 px viewport: the page loaded and connected, \
             a second WebSocket client sends {} messages one at a time, each sent once the \
             page shows the one before (its text in the list's last line, then a frame \
             painted, reported by a watcher in the page through a CDP binding: an event, no \
             fixed sleeps). Per message: the deltas of CDP \
             `Performance.getMetrics` TaskDuration (*main thread*: wall-clock time of its \
             tasks), ThreadTime (*main thread CPU*, which other processes competing for \
             the CPUs do not inflate), ScriptDuration, LayoutDuration + \
             RecalcStyleDuration over the batch ÷ {}. Batches with {} lines \
             shown (messages are sent first until the list holds that many `<li>`, then it is \
             scrolled to the bottom){held}. \
             Heap (JSHeapUsedSize, which leaves out wasm memory) and DOM nodes are read \
             after a forced garbage collection. *The probe alone*: the same wait for a line \
             already shown (an animation frame, a task, a binding call), included in every \
             message's figure and not subtracted.",
            scale.batch,
            scale.batch,
            scale
                .lines
                .iter()
                .map(|n| number(*n as f64, 0))
                .collect::<Vec<_>>()
                .join(" and "),
        )],
        rows,
        notes,
    }
}

fn runs(results: &PerServer) -> String {
    let count = results[0].len().max(results[1].len());
    format!("{count} {}", if count == 1 { "run" } else { "runs" })
}

/// Index of `kind` in [`PerServer`].
pub fn index(kind: ServerKind) -> usize {
    BOTH.iter()
        .position(|&k| k == kind)
        .expect("BOTH holds every kind")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
      "server": "parley", "url": "http://127.0.0.1:1/", "chromium": "142.0",
      "profile": {}, "stored": 50,
      "load": {"ready_signal": "main[data-connection=\"online\"]", "fcp_ms": 900.5,
               "messages_in_dom_ms": 800, "messages_painted_ms": 900.5,
               "socket_open_ms": 1500, "connected_ms": 1600, "dom_content_loaded_ms": 1000,
               "load_ms": 1100, "lines_shown": 51, "transferred_bytes": 109568,
               "requests": [{"url": "http://127.0.0.1:1/", "status": 200, "bytes": 9000}]},
      "messages": [
        {"label": "100 lines shown", "lines_before": 100, "lines_after": 200, "messages": 100,
         "task_ms": 4.0, "script_ms": 2.0, "layout_ms": 1.0, "style_ms": 0.5,
         "devtools_ms": 0.1, "js_heap_used_bytes": 2097152, "nodes": 3000, "wall_ms": 2000,
         "scroll_before": {}, "scroll_after": {}},
        {"label": "500 lines shown", "lines_before": 501, "lines_after": 501, "messages": 100,
         "task_ms": 6.0, "script_ms": 3.0, "layout_ms": 1.5, "style_ms": 0.5,
         "devtools_ms": 0.1, "js_heap_used_bytes": 4194304, "nodes": 9000, "wall_ms": 2000}
      ],
      "probe": null
    }"#;

    #[test]
    fn reads_the_script_output_and_makes_tables() {
        let report: BrowserReport = serde_json::from_str(SAMPLE).unwrap();
        assert_eq!(report.load.connected_ms, Some(1600.0));
        assert_eq!(report.messages[1].lines_before, 501);
        let mut node = report.clone();
        node.load.messages_painted_ms = None;
        node.messages[0].task_ms = 2.0;
        node.messages[1].task_ms = 2.5;
        let results: PerServer = [vec![Some(report)], vec![Some(node), None]];
        let scale = BrowserScale {
            chromium: PathBuf::from(DEFAULT_CHROMIUM),
            stored: 50,
            lines: vec![100, 500],
            held: 0,
            batch: 100,
        };
        let load = load_section(&scale, &results, Vec::new());
        let connected = load
            .rows
            .iter()
            .find(|row| row.measure.starts_with("connected"))
            .unwrap();
        assert_eq!(connected.met(), Some(Some(false)));
        assert!(load.setup[0].contains("2 runs per server"));

        let messages = messages_section(&scale, &results, Vec::new());
        let first = &messages.rows[0];
        assert_eq!(
            first.measure,
            "100 lines shown: main thread per message (ms)"
        );
        assert_eq!(first.met(), Some(Some(true)));
        let growth = messages
            .rows
            .iter()
            .find(|row| row.measure.contains("÷"))
            .unwrap();
        assert_eq!(growth.parley, vec![Some(1.5)]);
        assert_eq!(growth.met(), Some(Some(false)));
    }

    #[test]
    fn the_script_gets_the_scale() {
        let scale = BrowserScale {
            chromium: PathBuf::from("/x/chromium"),
            stored: 5,
            lines: vec![10, 20],
            held: 30,
            batch: 7,
        };
        let args = scale.script_args("127.0.0.1:9".parse().unwrap(), ServerKind::Node);
        assert_eq!(
            args.join(" "),
            "bench/page/measure.mjs --url http://127.0.0.1:9/ --server node --chromium \
             /x/chromium --stored 5 --lines 10,20 --held 30 --batch 7"
        );
    }
}
