//! What the report says about the run itself: when, on what machine, at
//! which commit, with which command.

use std::{
    fs,
    path::Path,
    process::Command,
    time::{SystemTime, UNIX_EPOCH},
};

use super::servers::{PARLEY_ARGS, PARLEY_BINARY};

/// The header lines, as (name, value) pairs.
pub fn header(
    repo: &Path,
    command_line: &str,
    started: SystemTime,
    elapsed_secs: Option<f64>,
) -> Vec<(String, String)> {
    let mut lines = vec![
        ("date".to_owned(), utc(started)),
        ("machine".to_owned(), machine()),
        (
            "kernel".to_owned(),
            command_output("uname", &["-r"], repo).unwrap_or_else(|| "unknown".to_owned()),
        ),
        ("commit".to_owned(), commit(repo)),
        ("command".to_owned(), format!("`{command_line}`")),
        ("Parley server".to_owned(), parley_binary(repo)),
        (
            "Node".to_owned(),
            format!(
                "`node bench/peers/node-ws/server.js`, {}",
                command_output("node", &["--version"], repo)
                    .unwrap_or_else(|| "node not found".to_owned())
            ),
        ),
        (
            "method".to_owned(),
            "a fresh server process for every run (one at a time), load generated in the \
             compare process itself on the same machine, so it competes with the server for \
             the CPUs; Parley's and Node's runs alternate"
                .to_owned(),
        ),
    ];
    let parley_env: Vec<String> = std::env::vars()
        .filter(|(name, _)| name.starts_with("PARLEY_"))
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    if !parley_env.is_empty() {
        lines.push((
            "environment".to_owned(),
            format!("`{}` (seen by the Parley server)", parley_env.join(" ")),
        ));
    }
    if let Some(secs) = elapsed_secs {
        lines.push((
            "duration".to_owned(),
            format!("{:.0} s ({:.1} min)", secs, secs / 60.0),
        ));
    }
    lines
}

/// `2025-11-24 08:15:02 UTC`.
pub fn utc(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    utc_from_unix(secs)
}

pub fn utc_from_unix(secs: u64) -> String {
    let (year, month, day) = civil_from_days(secs / 86_400);
    let rest = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`, for days ≥ 0).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            (name.trim() == "model name").then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .map_or_else(String::new, |kib| {
            format!(", {:.1} GiB RAM", kib as f64 / 1024.0 / 1024.0)
        });
    format!("{cpus} CPUs (nproc), {model}{memory}")
}

/// `abc1234`, or `abc1234+dirty` when the work tree has changes.
fn commit(repo: &Path) -> String {
    let Some(hash) = command_output("git", &["rev-parse", "--short", "HEAD"], repo) else {
        return "unknown (not a git work tree?)".to_owned();
    };
    match command_output("git", &["status", "--porcelain"], repo) {
        Some(status) if !status.is_empty() => format!("{hash}+dirty"),
        Some(_) => hash,
        None => format!("{hash} (status unknown)"),
    }
}

fn parley_binary(repo: &Path) -> String {
    let path = repo.join(PARLEY_BINARY);
    match fs::metadata(&path).and_then(|meta| meta.modified()) {
        Ok(modified) => format!(
            "`{PARLEY_BINARY} {}`, built {}",
            PARLEY_ARGS.join(" "),
            utc(modified)
        ),
        Err(_) => format!("`{PARLEY_BINARY}` not found"),
    }
}

/// A command's trimmed stdout, if it ran and succeeded.
fn command_output(program: &str, args: &[&str], dir: &Path) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The command line, quoted where a shell would need it.
pub fn command_line(args: impl IntoIterator<Item = String>) -> String {
    args.into_iter()
        .map(|arg| {
            let plain = !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
            if plain {
                arg
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_dates() {
        assert_eq!(utc_from_unix(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_from_unix(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_from_unix(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc_from_unix(1_735_689_599), "2024-12-31 23:59:59 UTC");
    }

    #[test]
    fn quotes_what_a_shell_would_split() {
        let args = ["compare", "--out", "my report.md", "--only", "idle", "it's"];
        assert_eq!(
            command_line(args.map(String::from)),
            r"compare --out 'my report.md' --only idle 'it'\''s'"
        );
    }
}
