//! The server's memory and CPU use, read from `/proc/<pid>` (Linux).

use std::{fmt, fs, io};

use serde::Serialize;

/// Reads one process's resident memory and CPU time.
#[derive(Debug, Clone)]
pub struct Probe {
    pid: u32,
    ticks_per_sec: f64,
}

/// CPU time a process has used since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTimes {
    pub user_secs: f64,
    pub system_secs: f64,
}

impl CpuTimes {
    fn since(self, earlier: Self) -> Self {
        Self {
            user_secs: self.user_secs - earlier.user_secs,
            system_secs: self.system_secs - earlier.system_secs,
        }
    }
}

impl Probe {
    /// Fails at once if the process cannot be read, rather than mid-run.
    pub fn new(pid: u32) -> io::Result<Self> {
        // SAFETY: sysconf only reads a system constant.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let probe = Self {
            pid,
            ticks_per_sec: if ticks > 0 { ticks as f64 } else { 100.0 },
        };
        probe.rss_kib()?;
        probe.cpu()?;
        Ok(probe)
    }

    pub fn rss_kib(&self) -> io::Result<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        parse_vm_rss(&status).ok_or_else(|| unexpected("VmRSS in", "status", self.pid))
    }

    pub fn cpu(&self) -> io::Result<CpuTimes> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        let (user, system) =
            parse_cpu_ticks(&stat).ok_or_else(|| unexpected("CPU times in", "stat", self.pid))?;
        Ok(CpuTimes {
            user_secs: user as f64 / self.ticks_per_sec,
            system_secs: system as f64 / self.ticks_per_sec,
        })
    }
}

fn unexpected(what: &str, file: &str, pid: u32) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("no {what} /proc/{pid}/{file}"),
    )
}

/// The `VmRSS:    1234 kB` line of `/proc/<pid>/status`, in KiB.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?;
    line.split_whitespace().next()?.parse().ok()
}

/// `utime` and `stime` (fields 14 and 15, in clock ticks) of
/// `/proc/<pid>/stat`. Field 2, the command name, is in parentheses and may
/// itself hold spaces and parentheses, so fields are counted from the last
/// `)`: the first field after it is field 3.
pub fn parse_cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace().skip(14 - 3);
    let user = fields.next()?.parse().ok()?;
    let system = fields.next()?.parse().ok()?;
    Some((user, system))
}

/// What the server used during a run, when `--server-pid` was given: with
/// several processes, their sums, and each one's in `processes`.
#[derive(Debug, Clone, Serialize)]
pub struct ServerUsage {
    /// Before the generator connected.
    pub rss_before_kib: u64,
    /// With every connection open and idle, after a short settle.
    pub rss_idle_kib: u64,
    /// At the end: of the measured window under load (fanout), of the hold
    /// (idle), after the last round (storm).
    pub rss_end_kib: u64,
    /// `(rss_idle - rss_before) / connections`.
    pub rss_kib_per_connection: f64,
    /// CPU used over the measured window (fanout), the hold (idle) or all
    /// the rounds (storm).
    pub cpu_user_secs: f64,
    pub cpu_system_secs: f64,
    /// Each process's share, in `--server-pid` order.
    pub processes: Vec<ProcessUsage>,
}

/// One server process's part of [`ServerUsage`].
#[derive(Debug, Clone, Serialize)]
pub struct ProcessUsage {
    pub pid: u32,
    pub rss_before_kib: u64,
    pub rss_idle_kib: u64,
    pub rss_end_kib: u64,
    pub cpu_user_secs: f64,
    pub cpu_system_secs: f64,
}

impl fmt::Display for ServerUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all = if self.processes.len() > 1 {
            format!(" ({} processes)", self.processes.len())
        } else {
            String::new()
        };
        writeln!(
            f,
            "  server rss    {} KiB before, {} KiB idle ({:.2} KiB/connection), {} KiB at the end{all}",
            self.rss_before_kib, self.rss_idle_kib, self.rss_kib_per_connection, self.rss_end_kib
        )?;
        writeln!(
            f,
            "  server cpu    {:.2} s user + {:.2} s system{all}",
            self.cpu_user_secs, self.cpu_system_secs
        )?;
        if self.processes.len() > 1 {
            for process in &self.processes {
                writeln!(
                    f,
                    "    pid {:<8}  cpu {:.2} s user + {:.2} s system, rss {} KiB idle, {} KiB at the end",
                    process.pid,
                    process.cpu_user_secs,
                    process.cpu_system_secs,
                    process.rss_idle_kib,
                    process.rss_end_kib
                )?;
            }
        }
        Ok(())
    }
}

/// Samples the server processes at the moments every mode shares: before
/// connecting, once connected, when the measurement starts and when it ends.
/// Without a pid it does nothing.
#[derive(Debug, Default)]
pub struct ServerWatch {
    processes: Vec<Watched>,
}

#[derive(Debug)]
struct Watched {
    probe: Probe,
    rss_before_kib: u64,
    rss_idle_kib: u64,
    cpu_start: CpuTimes,
}

impl ServerWatch {
    /// Takes the "before" sample of every process.
    pub fn new(pids: &[u32]) -> io::Result<Self> {
        let processes = pids
            .iter()
            .map(|&pid| {
                let probe = Probe::new(pid)?;
                Ok(Watched {
                    rss_before_kib: probe.rss_kib()?,
                    rss_idle_kib: 0,
                    cpu_start: CpuTimes::default(),
                    probe,
                })
            })
            .collect::<io::Result<_>>()?;
        Ok(Self { processes })
    }

    /// Takes the "idle" sample: call with every connection open and settled.
    pub fn connected(&mut self) -> io::Result<()> {
        for process in &mut self.processes {
            process.rss_idle_kib = process.probe.rss_kib()?;
        }
        Ok(())
    }

    /// Starts counting CPU time.
    pub fn start_cpu(&mut self) -> io::Result<()> {
        for process in &mut self.processes {
            process.cpu_start = process.probe.cpu()?;
        }
        Ok(())
    }

    /// Takes the final sample.
    pub fn finish(&self, connections: usize) -> io::Result<Option<ServerUsage>> {
        if self.processes.is_empty() {
            return Ok(None);
        }
        let processes = self
            .processes
            .iter()
            .map(|process| {
                let cpu = process.probe.cpu()?.since(process.cpu_start);
                Ok(ProcessUsage {
                    pid: process.probe.pid,
                    rss_before_kib: process.rss_before_kib,
                    rss_idle_kib: process.rss_idle_kib,
                    rss_end_kib: process.probe.rss_kib()?,
                    cpu_user_secs: cpu.user_secs,
                    cpu_system_secs: cpu.system_secs,
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        let sum = |field: fn(&ProcessUsage) -> u64| processes.iter().map(field).sum::<u64>();
        let (rss_before_kib, rss_idle_kib) = (sum(|p| p.rss_before_kib), sum(|p| p.rss_idle_kib));
        let grown = rss_idle_kib as f64 - rss_before_kib as f64;
        Ok(Some(ServerUsage {
            rss_before_kib,
            rss_idle_kib,
            rss_end_kib: sum(|p| p.rss_end_kib),
            rss_kib_per_connection: grown / connections.max(1) as f64,
            cpu_user_secs: processes.iter().map(|p| p.cpu_user_secs).sum(),
            cpu_system_secs: processes.iter().map(|p| p.cpu_system_secs).sum(),
            processes,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\tserver\nVmPeak:\t  99999 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(12345));
        assert_eq!(parse_vm_rss("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn reads_cpu_ticks_even_with_an_awkward_command_name() {
        let stat = "4242 (my (odd) server) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    517 83 0 0 20 0 3 0 1000 123456 789 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some((517, 83)));
        assert_eq!(parse_cpu_ticks("4242 (cut short) S 1"), None);
    }

    #[test]
    fn probes_this_process() {
        let probe = Probe::new(std::process::id()).unwrap();
        assert!(probe.rss_kib().unwrap() > 0);
        assert!(probe.cpu().unwrap().user_secs >= 0.0);
    }

    #[test]
    fn several_processes_are_summed_and_kept_apart() {
        let pid = std::process::id();
        let mut watch = ServerWatch::new(&[pid, pid]).unwrap();
        watch.connected().unwrap();
        watch.start_cpu().unwrap();
        let usage = watch.finish(10).unwrap().unwrap();
        assert_eq!(usage.processes.len(), 2);
        assert_eq!(usage.processes[0].pid, pid);
        assert_eq!(
            usage.rss_idle_kib,
            usage.processes[0].rss_idle_kib + usage.processes[1].rss_idle_kib
        );
        assert!(ServerWatch::new(&[]).unwrap().finish(10).unwrap().is_none());
    }
}
