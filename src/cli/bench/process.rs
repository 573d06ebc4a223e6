//! The processes a scenario starts (`canopy serve`, `canopy agent --simulate`), and the CPU
//! time and memory /proc says they use.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// CPU seconds (user + system) a process has used, from /proc.
pub(super) fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    cpu_seconds_in(&stat)
}

/// The CPU seconds of a /proc/PID/stat line (0 for what is not there), at 100 ticks a second.
pub(super) fn cpu_seconds_in(stat: &str) -> f64 {
    // Fields after the command name, which is in parentheses and may contain spaces.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// UDP datagrams this machine's kernel has sent (`OutDatagrams` of /proc/net/snmp); 0 if it
/// is not there. On loopback every datagram either side sends is counted once, so the change
/// over a run is the datagrams of that run's exchanges, both directions, plus anything else the
/// machine sent meanwhile.
pub(super) fn udp_datagrams_sent() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    udp_datagrams_sent_in(&snmp)
}

/// `OutDatagrams` of the `Udp:` lines of a /proc/net/snmp text (0 if it is not there).
pub(super) fn udp_datagrams_sent_in(snmp: &str) -> u64 {
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "OutDatagrams")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0)
}

/// The resident memory (`VmRSS`) of a /proc/PID/status text in MiB; NaN if it is not there.
pub(super) fn rss_mib_in(status: &str) -> f64 {
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// A `canopy serve` child process, so its memory is its own.
pub(super) struct ServerProcess {
    child: Child,
}

impl ServerProcess {
    pub(super) fn spawn(config: &Path, log: &Path) -> anyhow::Result<ServerProcess> {
        let exe = std::env::current_exe()?;
        let log = std::fs::File::create(log)?;
        let child = Command::new(exe)
            .args(["serve", "--config"])
            .arg(config)
            .env("CANOPY_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting the server process")?;
        Ok(ServerProcess { child })
    }

    pub(super) fn cpu_seconds(&self) -> f64 {
        cpu_seconds(&self.child.id().to_string())
    }

    pub(super) fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        rss_mib_in(&status)
    }

    pub(super) async fn stop(mut self) -> anyhow::Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                self.child.kill()?;
                bail!("the server did not stop on SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `canopy agent --simulate N` child process.
pub(super) struct AgentProcess {
    server: ServerProcess,
}

impl AgentProcess {
    pub(super) fn spawn(config: &Path, devices: u32, seed: u64) -> anyhow::Result<AgentProcess> {
        let exe = std::env::current_exe()?;
        let child = Command::new(exe)
            .args(["agent", "--config"])
            .arg(config)
            .args([
                "--simulate",
                &devices.to_string(),
                "--seed",
                &seed.to_string(),
            ])
            .env("CANOPY_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the devices' process")?;
        // Stopping and accounting work the same as for a server process.
        Ok(AgentProcess {
            server: ServerProcess { child },
        })
    }

    pub(super) fn cpu_seconds(&self) -> f64 {
        self.server.cpu_seconds()
    }

    pub(super) async fn stop(self) -> anyhow::Result<()> {
        self.server.stop().await
    }
}
