//! The `Command` task: run a program without a shell, within a time limit.

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};

use super::account::RunAs;
use super::{CANCELLED, Details, MAX_CAPTURE, Outcome, Steering};
use crate::model::task::DeviceState;

/// Bytes kept from one output stream, and whether some were dropped.
#[derive(Default)]
struct Capture {
    bytes: Vec<u8>,
    truncated: bool,
}

/// How waiting for the child ended.
enum End {
    Exited(std::io::Result<ExitStatus>),
    TimedOut,
    Cancelled,
}

/// Runs `program` with `args`; the time limit covers the process and the draining of its output.
pub(super) async fn run(
    program: &str,
    args: &[String],
    time_limit_secs: u32,
    cancel: &mut Steering,
    run_as: Option<&RunAs>,
) -> Outcome {
    if time_limit_secs == 0 {
        return Outcome::failed("time limit must be at least 1 s");
    }
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(run_as) = run_as {
        let home = if run_as.home.is_dir() {
            run_as.home.as_path()
        } else {
            std::path::Path::new("/")
        };
        command
            .env("HOME", &run_as.home)
            .env("USER", &run_as.name)
            .env("LOGNAME", &run_as.name)
            .current_dir(home);
        // SAFETY: the closure only makes async-signal-safe calls (`account::switch_to`).
        unsafe {
            command.pre_exec(super::account::switch_to(run_as));
        }
    }
    let spawned = command.spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => return Outcome::failed(format!("cannot start {program}: {e}")),
    };
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let (mut out, mut err) = (Capture::default(), Capture::default());
    let end = {
        let finish = async {
            let (status, (), ()) = tokio::join!(
                child.wait(),
                drain(stdout, &mut out),
                drain(stderr, &mut err)
            );
            status
        };
        tokio::select! {
            status = finish => End::Exited(status),
            () = tokio::time::sleep(Duration::from_secs(time_limit_secs.into())) => End::TimedOut,
            () = cancel.cancelled() => End::Cancelled,
        }
    };
    let (state, description, exit_code, progress) = match end {
        End::Exited(Ok(status)) => {
            let (state, description) = describe(status);
            (state, description, status.code(), 100)
        }
        End::Exited(Err(e)) => {
            kill(&mut child, program).await;
            (
                DeviceState::Failed,
                format!("cannot wait for {program}: {e}"),
                None,
                0,
            )
        }
        End::TimedOut => {
            kill(&mut child, program).await;
            let description = format!("timed out after {time_limit_secs} s (killed)");
            (DeviceState::Failed, description, None, 0)
        }
        End::Cancelled => {
            kill(&mut child, program).await;
            (DeviceState::Failed, CANCELLED.to_string(), None, 0)
        }
    };
    let (stdout, stdout_truncated) = out.into_text();
    let (stderr, stderr_truncated) = err.into_text();
    Outcome {
        state,
        description,
        progress,
        need_restart: false,
        details: Details::Command {
            exit_code,
            stdout,
            stderr,
            stdout_truncated,
            stderr_truncated,
        },
    }
}

/// Kills and reaps the child so no zombie outlives the run (a no-op if it already exited).
async fn kill(child: &mut Child, program: &str) {
    if let Err(e) = child.kill().await {
        tracing::warn!(program, error = %e, "cannot kill a command's process");
    }
}

/// The state and one-line description of an exit status.
fn describe(status: ExitStatus) -> (DeviceState, String) {
    match (status.code(), status.signal()) {
        (Some(0), _) => (DeviceState::Succeeded, "exit code 0".to_string()),
        (Some(code), _) => (DeviceState::Failed, format!("exit code {code}")),
        (None, Some(signal)) => (DeviceState::Failed, format!("killed by signal {signal}")),
        (None, None) => (
            DeviceState::Failed,
            "ended without an exit code".to_string(),
        ),
    }
}

/// Reads a stream to its end, keeping the first [`MAX_CAPTURE`] bytes: reading on past that
/// keeps the child from blocking on a full pipe.
async fn drain<R: AsyncRead + Unpin>(stream: Option<R>, capture: &mut Capture) {
    let Some(mut stream) = stream else { return };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => capture.keep(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::debug!(error = %e, "cannot read a command's output");
                return;
            }
        }
    }
}

impl Capture {
    /// Keeps what still fits and remembers that the rest was dropped.
    fn keep(&mut self, chunk: &[u8]) {
        let room = MAX_CAPTURE - self.bytes.len();
        if chunk.len() > room {
            self.truncated = true;
        }
        self.bytes
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    /// Lossy UTF-8 text of at most [`MAX_CAPTURE`] bytes, and whether output was dropped.
    fn into_text(self) -> (String, bool) {
        let (mut bytes, mut truncated) = (self.bytes, self.truncated);
        if truncated {
            drop_partial_char(&mut bytes);
        }
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        if text.len() > MAX_CAPTURE {
            // Replacement characters are longer than the bytes they replace.
            let mut cut = MAX_CAPTURE;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            truncated = true;
        }
        (text, truncated)
    }
}

/// Drops a UTF-8 sequence cut short by truncation, which is not invalid output of the program.
fn drop_partial_char(bytes: &mut Vec<u8>) {
    let tail = bytes.len().saturating_sub(3);
    let Some(lead) = (tail..bytes.len()).rev().find(|&i| bytes[i] & 0xC0 != 0x80) else {
        return;
    };
    let cut_short =
        matches!(std::str::from_utf8(&bytes[lead..]), Err(e) if e.error_len().is_none());
    if cut_short {
        bytes.truncate(lead);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::{TaskPayload, execute};
    use super::*;

    fn command(program: &str, args: &[&str], time_limit_secs: u32) -> TaskPayload {
        TaskPayload::Command {
            program: program.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            time_limit_secs,
        }
    }

    async fn run_command(program: &str, args: &[&str], time_limit_secs: u32) -> Outcome {
        execute(
            &command(program, args, time_limit_secs),
            0,
            Steering::unsteered(),
            None,
        )
        .await
    }

    fn command_details(outcome: &Outcome) -> (Option<i32>, &str, &str, bool, bool) {
        match &outcome.details {
            Details::Command {
                exit_code,
                stdout,
                stderr,
                stdout_truncated,
                stderr_truncated,
            } => (
                *exit_code,
                stdout,
                stderr,
                *stdout_truncated,
                *stderr_truncated,
            ),
            other => panic!("not command details: {other:?}"),
        }
    }

    #[tokio::test]
    async fn echo_succeeds_with_its_output() {
        let outcome = run_command("/bin/echo", &["hello"], 10).await;
        assert_eq!(outcome.state, DeviceState::Succeeded);
        assert_eq!(outcome.description, "exit code 0");
        assert_eq!(outcome.progress, 100);
        assert_eq!(
            command_details(&outcome),
            (Some(0), "hello\n", "", false, false)
        );
    }

    #[tokio::test]
    async fn non_zero_exit_fails() {
        let outcome = run_command("/bin/sh", &["-c", "echo oops >&2; exit 3"], 10).await;
        assert_eq!(outcome.state, DeviceState::Failed);
        assert_eq!(outcome.description, "exit code 3");
        assert_eq!(
            command_details(&outcome),
            (Some(3), "", "oops\n", false, false)
        );
    }

    #[tokio::test]
    async fn death_by_signal_is_reported() {
        let outcome = run_command("/bin/sh", &["-c", "kill -9 $$"], 10).await;
        assert_eq!(outcome.state, DeviceState::Failed);
        assert_eq!(outcome.description, "killed by signal 9");
        assert_eq!(command_details(&outcome).0, None);
    }

    #[tokio::test]
    async fn long_output_is_truncated_and_drained() {
        let script = "head -c 200000 /dev/zero; head -c 300000 /dev/zero >&2";
        let outcome = run_command("/bin/sh", &["-c", script], 10).await;
        assert_eq!(outcome.state, DeviceState::Succeeded);
        let (_, stdout, stderr, stdout_truncated, stderr_truncated) = command_details(&outcome);
        assert_eq!(stdout.len(), MAX_CAPTURE);
        assert_eq!(stderr.len(), MAX_CAPTURE);
        assert!(stdout_truncated && stderr_truncated);
    }

    #[tokio::test]
    async fn time_limit_kills_the_process() {
        let started = Instant::now();
        let outcome = run_command("/bin/sleep", &["30"], 1).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(outcome.state, DeviceState::Failed);
        assert_eq!(outcome.description, "timed out after 1 s (killed)");
        assert_eq!(outcome.progress, 0);
    }

    #[tokio::test]
    async fn zero_time_limit_is_refused() {
        let outcome = run_command("/bin/echo", &["hello"], 0).await;
        assert_eq!(outcome.state, DeviceState::Failed);
        assert_eq!(outcome.description, "time limit must be at least 1 s");
    }

    #[tokio::test]
    async fn missing_program_cannot_start() {
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("no-such-program");
        let outcome = run_command(program.to_str().unwrap(), &[], 10).await;
        assert_eq!(outcome.state, DeviceState::Failed);
        assert!(
            outcome.description.starts_with("cannot start "),
            "{}",
            outcome.description
        );
        assert_eq!(outcome.details, Details::None);
    }

    #[tokio::test]
    async fn cancellation_kills_the_process() {
        let (tx, steering, _reports) = Steering::new();
        let started = Instant::now();
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            tx.send(super::super::Control::Cancel).unwrap();
            tx
        });
        let outcome = execute(&command("/bin/sleep", &["30"], 60), 0, steering, None).await;
        assert_eq!(outcome.state, DeviceState::Failed);
        assert_eq!(outcome.description, "cancelled");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        canceller.await.unwrap();
    }

    #[test]
    fn truncation_does_not_leave_half_a_character() {
        let mut capture = Capture::default();
        capture.keep(&vec![b'a'; MAX_CAPTURE - 1]);
        capture.keep("é".as_bytes());
        let (text, truncated) = capture.into_text();
        assert!(truncated);
        assert_eq!(text.len(), MAX_CAPTURE - 1);
        assert!(text.bytes().all(|b| b == b'a'));
    }

    #[test]
    fn invalid_output_stays_within_the_cap() {
        let mut capture = Capture::default();
        capture.keep(&vec![0xFF; MAX_CAPTURE]);
        let (text, truncated) = capture.into_text();
        assert!(truncated);
        assert!(text.len() <= MAX_CAPTURE);
        assert!(text.chars().all(|c| c == char::REPLACEMENT_CHARACTER));
    }
}
