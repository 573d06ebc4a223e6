//! Whether the applications tasks belong to are installed and running on the device.
//!
//! An `[[application]]` of the agent's config is running either by its static `running` flag
//! or, with `process = "NAME"`, while a process of that name exists (read from /proc). A
//! simulated device's applications are those of its facts. The agent itself
//! ([`AGENT_APPLICATION`]) is always running.

use std::path::Path;
use std::sync::Arc;

use super::config::AgentConfig;
use crate::model::device::Application;
use crate::model::task::AGENT_APPLICATION;

/// The kernel keeps this many bytes of a process name in /proc/<pid>/comm.
const COMM_LEN: usize = 15;

/// Where an application stands on this device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppStatus {
    Running,
    Stopped,
    NotInstalled,
}

/// How the agent knows whether one application is running.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Source {
    Fixed(bool),
    Process(String),
}

/// The applications of one device and how to tell whether each is running.
#[derive(Clone, Debug, Default)]
pub struct Applications {
    entries: Vec<(String, Source)>,
}

impl Applications {
    /// Those of the agent's config: `process` when given, else the `running` flag.
    pub fn from_config(config: &AgentConfig) -> Applications {
        let entries = config
            .applications
            .iter()
            .map(|a| {
                let source = match config.application_processes.get(&a.name) {
                    Some(process) => Source::Process(process.clone()),
                    None => Source::Fixed(a.running),
                };
                (a.name.clone(), source)
            })
            .collect();
        Applications { entries }
    }

    /// Applications whose state never changes, as a simulated device's facts list them.
    pub fn fixed(applications: &[Application]) -> Applications {
        Applications {
            entries: applications
                .iter()
                .map(|a| (a.name.clone(), Source::Fixed(a.running)))
                .collect(),
        }
    }

    /// Whether [`Applications::status`] reads the machine (then not on an async thread).
    pub fn reads_processes(&self) -> bool {
        self.entries
            .iter()
            .any(|(_, s)| matches!(s, Source::Process(_)))
    }

    /// Where `application` stands now. May read /proc: see [`Applications::check`].
    pub fn status(&self, application: &str) -> AppStatus {
        if application == AGENT_APPLICATION {
            return AppStatus::Running;
        }
        match self.entries.iter().find(|(name, _)| name == application) {
            None => AppStatus::NotInstalled,
            Some((_, Source::Fixed(true))) => AppStatus::Running,
            Some((_, Source::Fixed(false))) => AppStatus::Stopped,
            Some((_, Source::Process(process))) => {
                if process_running(process) {
                    AppStatus::Running
                } else {
                    AppStatus::Stopped
                }
            }
        }
    }

    /// [`Applications::status`], on a blocking thread when it reads the machine.
    pub async fn check(self: &Arc<Self>, application: &str) -> AppStatus {
        if !self.may_change(application) {
            return self.status(application);
        }
        let (apps, application) = (Arc::clone(self), application.to_string());
        tokio::task::spawn_blocking(move || apps.status(&application))
            .await
            .unwrap_or(AppStatus::Stopped)
    }

    /// Every application with its state now, as the device reports them. May read /proc.
    pub fn snapshot(&self) -> Vec<Application> {
        let running = match self.reads_processes() {
            true => running_processes(),
            false => Vec::new(),
        };
        self.entries
            .iter()
            .map(|(name, source)| Application {
                name: name.clone(),
                running: match source {
                    Source::Fixed(running) => *running,
                    Source::Process(process) => running.iter().any(|p| p.is(process)),
                },
            })
            .collect()
    }

    /// [`Applications::snapshot`], on a blocking thread when it reads the machine.
    pub async fn snapshot_async(self: &Arc<Self>) -> Vec<Application> {
        if !self.reads_processes() {
            return self.snapshot();
        }
        let apps = Arc::clone(self);
        match tokio::task::spawn_blocking(move || apps.snapshot()).await {
            Ok(applications) => applications,
            Err(_) => self.fixed_view(),
        }
    }

    /// The applications with those bound to a process shown as not running.
    fn fixed_view(&self) -> Vec<Application> {
        self.entries
            .iter()
            .map(|(name, source)| Application {
                name: name.clone(),
                running: *source == Source::Fixed(true),
            })
            .collect()
    }

    /// Whether `application`'s state is read from the machine (and so may change).
    pub fn may_change(&self, application: &str) -> bool {
        application != AGENT_APPLICATION
            && self
                .entries
                .iter()
                .any(|(name, s)| name == application && matches!(s, Source::Process(_)))
    }
}

/// One live process: its kernel name (at most 15 bytes) and the file name of its program.
struct Process {
    comm: Vec<u8>,
    exe: Option<Vec<u8>>,
}

impl Process {
    /// Whether this is a process named `name`: its kernel name is the first 15 bytes of
    /// `name`, or its program's file name is `name`.
    fn is(&self, name: &str) -> bool {
        let name = name.as_bytes();
        self.comm == name[..name.len().min(COMM_LEN)] || self.exe.as_deref() == Some(name)
    }
}

/// Whether a live (not zombie) process named `name` exists on this machine: its
/// /proc/<pid>/comm is the first 15 bytes of `name` (the kernel keeps no more), or the file
/// name of its /proc/<pid>/exe is `name`. Reads /proc: call it off the async threads.
pub fn process_running(name: &str) -> bool {
    !name.is_empty()
        && processes_in(Path::new("/proc"), Some(name))
            .next()
            .is_some()
}

/// Every live process of this machine.
fn running_processes() -> Vec<Process> {
    processes_in(Path::new("/proc"), None).collect()
}

/// The live processes under `proc`; with `name`, only those that are `name` (which spares
/// reading the `exe` link of the others when their comm matches).
fn processes_in<'a>(proc: &Path, name: Option<&'a str>) -> impl Iterator<Item = Process> + 'a {
    let entries = match std::fs::read_dir(proc) {
        Ok(entries) => Some(entries),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list processes in {}", proc.display());
            None
        }
    };
    entries
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|entry| {
            let file_name = entry.file_name();
            let pid = file_name.as_encoded_bytes();
            !pid.is_empty() && pid.iter().all(u8::is_ascii_digit)
        })
        .filter_map(move |entry| {
            let dir = entry.path();
            // A process can end at any moment: whatever cannot be read is not counted.
            let mut comm = std::fs::read(dir.join("comm")).ok()?;
            if comm.last() == Some(&b'\n') {
                comm.pop();
            }
            let mut process = Process { comm, exe: None };
            let comm_matches = name.is_some_and(|n| process.is(n));
            if !comm_matches {
                process.exe = exe_name(&dir);
                if name.is_some_and(|n| !process.is(n)) {
                    return None;
                }
            }
            (!is_zombie(&dir)).then_some(process)
        })
}

/// The file name of a process's program, when its /proc/<pid>/exe link is readable.
fn exe_name(dir: &Path) -> Option<Vec<u8>> {
    let target = std::fs::read_link(dir.join("exe")).ok()?;
    let file_name = target.file_name()?.as_encoded_bytes();
    // A program replaced or removed since it started reads "NAME (deleted)".
    let file_name = file_name.strip_suffix(b" (deleted)").unwrap_or(file_name);
    Some(file_name.to_vec())
}

/// A process that ended but was not reaped by its parent yet is no longer running.
fn is_zombie(dir: &Path) -> bool {
    let Ok(stat) = std::fs::read(dir.join("stat")) else {
        return true;
    };
    // "pid (comm) S ...": the comm may hold spaces and parentheses, the state follows the last ')'.
    let Some(end) = stat.iter().rposition(|&b| b == b')') else {
        return false;
    };
    matches!(stat.get(end + 2), Some(b'Z' | b'X'))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::{Duration, Instant};

    use rand::Rng;

    use super::*;

    /// A copy of /bin/sleep under a unique name of `len` characters: its directory, its path,
    /// and the name.
    pub(crate) fn sleep_copy(len: usize) -> (tempfile::TempDir, std::path::PathBuf, String) {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::rng();
        let name: String = std::iter::once('c')
            .chain((1..len).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join(&name);
        std::fs::copy("/bin/sleep", &program).unwrap();
        (dir, program, name)
    }

    /// Starts a process, retrying while its program is "text file busy": a copy just written
    /// can stay open for writing in a child that another test thread forked meanwhile.
    pub(crate) fn spawn_retrying<T>(mut spawn: impl FnMut() -> std::io::Result<T>) -> T {
        for _ in 0..250 {
            match spawn() {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return other.unwrap(),
            }
        }
        panic!("the program stayed busy for 5 s");
    }

    /// Waits (bounded) until `process_running(name)` is `expected`.
    pub(crate) fn until_running(name: &str, expected: bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while process_running(name) != expected {
            assert!(
                Instant::now() < deadline,
                "process {name} running should be {expected}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_process_runs_until_it_is_killed() {
        let (_dir, program, name) = sleep_copy(12);
        assert_eq!(name.len(), 12);
        assert!(!process_running(&name));
        let mut child = spawn_retrying(|| std::process::Command::new(&program).arg("30").spawn());
        until_running(&name, true);
        assert!(!process_running(&name[..11]));
        child.kill().unwrap();
        child.wait().unwrap();
        until_running(&name, false);
        assert!(!process_running(""));
    }

    #[test]
    fn a_long_name_matches_by_its_first_15_bytes_or_its_program() {
        let (_dir, program, name) = sleep_copy(20);
        let mut child = spawn_retrying(|| std::process::Command::new(&program).arg("30").spawn());
        // By its program's file name, and by the kernel's name of 15 bytes.
        until_running(&name, true);
        let mut same_start = name[..15].to_string();
        same_start.push_str("other");
        assert!(process_running(&same_start));
        assert!(process_running(&name[..15]));
        assert!(!process_running(&name[..14]));
        child.kill().unwrap();
        child.wait().unwrap();
        until_running(&name, false);
    }

    #[test]
    fn a_zombie_is_not_running() {
        let (_dir, program, name) = sleep_copy(12);
        let mut child = spawn_retrying(|| std::process::Command::new(&program).arg("30").spawn());
        until_running(&name, true);
        child.kill().unwrap();
        // Not reaped yet: it stays in /proc as a zombie.
        until_running(&name, false);
        child.wait().unwrap();
    }

    #[test]
    fn statuses_by_source() {
        let apps = Applications::fixed(&[
            Application {
                name: "On".into(),
                running: true,
            },
            Application {
                name: "Off".into(),
                running: false,
            },
        ]);
        assert!(!apps.reads_processes());
        assert_eq!(apps.status("On"), AppStatus::Running);
        assert_eq!(apps.status("Off"), AppStatus::Stopped);
        assert_eq!(apps.status("Gone"), AppStatus::NotInstalled);
        assert_eq!(apps.status(AGENT_APPLICATION), AppStatus::Running);
        assert_eq!(
            Applications::default().status(AGENT_APPLICATION),
            AppStatus::Running
        );
    }

    #[tokio::test]
    async fn configured_processes_are_checked_live() {
        let (_dir, program, name) = sleep_copy(12);
        let text = format!(
            "server = \"h:1\"\nca = \"c\"\ndata = \"d\"\n[[application]]\nname = \"Bound\"\n\
             process = \"{name}\"\n[[application]]\nname = \"Static\"\nrunning = false\n"
        );
        let config = AgentConfig::parse(&text, Path::new("agent.toml"), Path::new("/etc")).unwrap();
        let apps = Arc::new(Applications::from_config(&config));
        assert!(apps.reads_processes());
        assert_eq!(apps.check("Bound").await, AppStatus::Stopped);
        let mut child = spawn_retrying(|| {
            tokio::process::Command::new(&program)
                .arg("30")
                .kill_on_drop(true)
                .spawn()
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while apps.check("Bound").await != AppStatus::Running {
            assert!(Instant::now() < deadline, "never seen running");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seen = apps.snapshot_async().await;
        assert_eq!(
            seen,
            [
                Application {
                    name: "Bound".into(),
                    running: true
                },
                Application {
                    name: "Static".into(),
                    running: false
                }
            ]
        );
        child.kill().await.unwrap();
        assert_eq!(apps.check("Bound").await, AppStatus::Stopped);
        assert_eq!(apps.check("Static").await, AppStatus::Stopped);
    }
}
