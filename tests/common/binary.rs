//! The `canopy` binary as a process, as an administrator runs it.

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `canopy ARGS` run in `dir`, with its session file at `session` and `stdin` as its input.
pub fn canopy(dir: &Path, session: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_canopy"))
        .current_dir(dir)
        .env("CANOPY_SESSION", session)
        .env_remove("CANOPY_PASSWORD")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        // A command that fails before reading its input closes the pipe; its exit status
        // and message tell what happened.
        let _ = child.stdin.take().unwrap().write_all(text.as_bytes());
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `canopy login` as `admin` to the server at `addr`, the password on standard input, with
/// `extra` arguments.
pub fn login(dir: &Path, session: &Path, addr: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "login",
        "--server",
        addr,
        "--ca",
        "certs/ca.pem",
        "--user",
        "admin",
        "--password-stdin",
    ];
    args.extend_from_slice(extra);
    let password = format!("{}\n", canopy::cli::deployment::ADMIN_PASSWORD);
    canopy(dir, session, &args, Some(&password))
}
