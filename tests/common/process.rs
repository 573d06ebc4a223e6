//! The `canopy` binary as processes, as an administrator runs it: commands with their input
//! and output, `canopy serve` processes, and commands on a terminal (a pseudo-terminal that
//! util-linux `script` opens), answered prompt by prompt.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The administrator's password in these tests.
pub const PASSWORD: &str = "a long admin password";

/// The `canopy` binary run in `dir`, with its session file there.
pub struct Canopy {
    pub dir: PathBuf,
}

impl Canopy {
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_canopy"));
        cmd.current_dir(&self.dir)
            .env("CANOPY_SESSION", self.dir.join("session.toml"))
            .env_remove("CANOPY_PASSWORD")
            .args(args);
        cmd
    }

    /// `canopy ARGS` with `stdin` as its input, to its end.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let session = self.dir.join("session.toml");
        super::binary::canopy(&self.dir, &session, args, stdin)
    }

    pub fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "canopy {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn fails(&self, args: &[&str], stdin: Option<&str>) -> (i32, String) {
        let out = self.run(args, stdin);
        assert!(!out.status.success(), "canopy {args:?} should have failed");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Logs in as admin as soon as the server at `server` answers (its log is shown if it
    /// never does).
    pub fn login_when_up(&self, server: &str) {
        let login = [
            "login",
            "--server",
            server,
            "--ca",
            "certs/ca.pem",
            "--user",
            "admin",
            "--password-stdin",
        ];
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.run(&login, Some(&format!("{PASSWORD}\n")));
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "login never worked: {} {}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(self.dir.join("primary.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn serve(&self, config: &str) -> Server {
        let log = std::fs::File::create(self.dir.join(format!("{config}.log"))).unwrap();
        let child = self
            .cmd(&["serve", "--config", config])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Server { child }
    }
}

/// A `canopy serve` process, killed when dropped.
pub struct Server {
    pub child: Child,
}

impl Server {
    /// SIGTERM, then the exit status: a clean shutdown exits 0.
    pub fn terminate(mut self) -> bool {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// A server config for `name` on loopback `port`, below `parent` (its port and fingerprint).
pub fn config(name: &str, port: u16, parent: Option<(u32, &str)>) -> String {
    let mut text = format!(
        "name = \"{name}\"\ndata = \"data/{name}.redb\"\nlisten = \"127.0.0.1:{port}\"\n\
         [tls]\nca = \"certs/ca.pem\"\ncert = \"certs/{name}.pem\"\nkey = \"certs/{name}.key\"\n\
         [link]\nkeep_alive_ms = 1000\nidle_timeout_ms = 5000\nbackoff_initial_ms = 100\nbackoff_max_ms = 1000\n"
    );
    if let Some((port, fingerprint)) = parent {
        text.push_str(&format!(
            "[parent]\naddress = \"localhost\"\nport = {port}\nfingerprint = \"{fingerprint}\"\n"
        ));
    }
    text
}

impl Canopy {
    /// `canopy ARGS` on a terminal: each answer is typed once its prompt has been shown (so
    /// that, as for a person, a password prompt has turned echo off before its answer comes).
    /// Returns everything the terminal showed; the command must succeed.
    pub fn on_terminal(&self, args: &[&str], dialogue: &[(&str, &str)]) -> String {
        let quoted: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_canopy"))
            .chain(args.iter().copied())
            .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
            .collect();
        let mut child = Command::new("script")
            .args(["-qec", &quoted.join(" "), "/dev/null"])
            .current_dir(&self.dir)
            .env("CANOPY_SESSION", self.dir.join("session.toml"))
            .env_remove("CANOPY_PASSWORD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (mut input, mut output) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = output.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    return;
                }
            }
        });
        let mut shown = String::new();
        let mut seen = 0;
        for (prompt, answer) in dialogue {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Some(at) = shown[seen..].find(prompt) {
                    seen += at + prompt.len();
                    break;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(bytes) => shown.push_str(&String::from_utf8_lossy(&bytes)),
                    Err(_) => panic!("no prompt {prompt:?}; the terminal showed:\n{shown}"),
                }
            }
            // The prompt is out; give the program a moment to turn echo off after it.
            std::thread::sleep(Duration::from_millis(100));
            input.write_all(format!("{answer}\n").as_bytes()).unwrap();
        }
        drop(input);
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("canopy {args:?} did not end on the terminal:\n{shown}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        reader.join().unwrap();
        while let Ok(bytes) = rx.try_recv() {
            shown.push_str(&String::from_utf8_lossy(&bytes));
        }
        assert!(
            status.success(),
            "canopy {args:?} failed on the terminal:\n{shown}"
        );
        shown
    }
}
