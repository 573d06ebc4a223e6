//! The `Scan` task: hash files under some paths and report those on a blocklist.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use ring::digest;

use super::{CANCELLED, Control, Details, MAX_SCAN_MATCHES, Outcome, ScanMatch, Steering, count};
use crate::model::task::DeviceState;

/// Read size when hashing: large enough to stream big files cheaply.
const CHUNK: usize = 64 * 1024;
/// How often the walk's progress and pause are looked at.
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// What the blocking walk and the run share: what it is asked, and how far it is.
#[derive(Default)]
struct Walk {
    /// 0: go on, 1: pause, 2: stop.
    control: AtomicU8,
    paused: AtomicBool,
    /// Regular files found by the first pass (0 until it is over).
    files: AtomicU64,
    hashed: AtomicU64,
}

impl Walk {
    fn ask(&self, control: Control) {
        let code = match control {
            Control::Go => 0,
            Control::Pause => 1,
            Control::Cancel => 2,
        };
        self.control.store(code, Ordering::Relaxed);
    }

    /// Between two files or chunks: waits while paused; false once asked to stop.
    fn go_on(&self) -> bool {
        while self.control.load(Ordering::Relaxed) == 1 {
            self.paused.store(true, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(50));
        }
        self.paused.store(false, Ordering::Relaxed);
        self.control.load(Ordering::Relaxed) != 2
    }

    fn percent(&self) -> u8 {
        let files = self.files.load(Ordering::Relaxed);
        let hashed = self.hashed.load(Ordering::Relaxed);
        match files {
            0 => 0,
            _ => u8::try_from(hashed.min(files) * 100 / files).unwrap_or(100),
        }
    }
}

/// Validates the blocklist, then walks `paths` on a blocking thread: once to count the files
/// (so it can say how far it is), once to hash them. Cancellation answers at once and stops
/// the walk at its next file or chunk; a pause holds it there.
pub(super) async fn run(
    paths: &[String],
    blocklist: &[String],
    steering: &mut Steering,
) -> Outcome {
    let blocklist = match parse_blocklist(blocklist) {
        Ok(blocklist) => blocklist,
        Err(n) => return Outcome::failed(format!("blocklist entry {n} is not a SHA-256")),
    };
    let shared = Arc::new(Walk::default());
    let mut walk = {
        let (paths, shared) = (paths.to_vec(), Arc::clone(&shared));
        tokio::task::spawn_blocking(move || scan(&paths, &blocklist, &shared))
    };
    let walked = loop {
        tokio::select! {
            walked = &mut walk => break walked,
            () = steering.cancelled() => {
                // Not waiting for the thread: a read stuck on a slow file must not delay
                // the answer.
                shared.ask(Control::Cancel);
                return Outcome::failed(CANCELLED);
            }
            () = tokio::time::sleep(LOOK_EVERY) => {}
        }
        shared.ask(steering.control());
        steering.set_paused(shared.paused.load(Ordering::Relaxed));
        steering.progress(shared.percent());
    };
    match walked {
        Ok(Some(tally)) => tally.outcome(),
        Ok(None) => Outcome::failed(CANCELLED),
        Err(e) => Outcome::failed(format!("scan stopped: {e}")),
    }
}

/// The blocklist as lowercase hex, or the 1-based number of its first bad entry.
fn parse_blocklist(entries: &[String]) -> Result<HashSet<String>, usize> {
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let valid = entry.len() == 64 && entry.bytes().all(|b| b.is_ascii_hexdigit());
            if valid {
                Ok(entry.to_ascii_lowercase())
            } else {
                Err(i + 1)
            }
        })
        .collect()
}

/// What a walk found so far.
#[derive(Debug, Default)]
struct Tally {
    files_scanned: u64,
    unreadable: u64,
    /// All matches, including those not listed.
    matched: u64,
    matches: Vec<ScanMatch>,
}

impl Tally {
    /// Counts a hashed file, listing it while the list has room.
    fn record(&mut self, path: &Path, sha256: String, blocklist: &HashSet<String>) {
        self.files_scanned += 1;
        if blocklist.contains(&sha256) {
            self.matched += 1;
            if self.matches.len() < MAX_SCAN_MATCHES {
                self.matches.push(ScanMatch {
                    path: path.to_string_lossy().into_owned(),
                    sha256,
                });
            }
        }
    }

    /// Any match or unreadable file is worth a look: a Warning.
    fn outcome(self) -> Outcome {
        let mut description = if self.matched > 0 {
            let files = count(self.matched, "file", "files");
            format!(
                "{files} matched the blocklist ({} scanned)",
                self.files_scanned
            )
        } else {
            format!(
                "{} scanned, no match",
                count(self.files_scanned, "file", "files")
            )
        };
        if self.unreadable > 0 {
            let _ = write!(description, "; {} unreadable", self.unreadable);
        }
        let state = if self.matched > 0 || self.unreadable > 0 {
            DeviceState::Warning
        } else {
            DeviceState::Succeeded
        };
        let details = Details::Scan {
            files_scanned: self.files_scanned,
            unreadable: self.unreadable,
            matches: self.matches,
        };
        Outcome::finished(state, description, details)
    }
}

/// Counts the regular files under `paths`, then hashes them; None when stopped.
fn scan(paths: &[String], blocklist: &HashSet<String>, walk: &Walk) -> Option<Tally> {
    let mut files = 0u64;
    visit(paths, walk, &mut 0, |_| {
        files += 1;
        true
    })?;
    walk.files.store(files.max(1), Ordering::Relaxed);
    let mut tally = Tally::default();
    let mut unlisted = 0;
    let mut buf = vec![0u8; CHUNK];
    visit(paths, walk, &mut unlisted, |path| {
        let hashed = hash_file(path, &mut buf, walk);
        walk.hashed.fetch_add(1, Ordering::Relaxed);
        match hashed {
            Ok(Some(sha256)) => tally.record(path, sha256, blocklist),
            Ok(None) => return false,
            Err(_) => tally.unreadable += 1,
        }
        true
    })?;
    tally.unreadable += unlisted;
    Some(tally)
}

/// Calls `file` for each regular file under `paths`, depth-first in name order (so results
/// are stable), counting the paths and directories it cannot read in `unreadable`; None
/// when stopped (by the walk's control, or `file` answering false).
fn visit(
    paths: &[String],
    walk: &Walk,
    unreadable: &mut u64,
    mut file: impl FnMut(&Path) -> bool,
) -> Option<()> {
    let mut pending: Vec<PathBuf> = paths.iter().rev().map(PathBuf::from).collect();
    while let Some(path) = pending.pop() {
        if !walk.go_on() {
            return None;
        }
        let Ok(meta) = fs::symlink_metadata(&path) else {
            *unreadable += 1;
            continue;
        };
        let kind = meta.file_type();
        if kind.is_dir() {
            list_dir(&path, &mut pending, unreadable);
        } else if kind.is_file() && !file(&path) {
            return None;
        }
        // Symlinks are not followed; devices, FIFOs and sockets have no content to hash.
    }
    Some(())
}

/// Queues a directory's entries so they pop in name order.
fn list_dir(dir: &Path, pending: &mut Vec<PathBuf>, unreadable: &mut u64) {
    let Ok(entries) = fs::read_dir(dir) else {
        *unreadable += 1;
        return;
    };
    let mut children = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => children.push(entry.path()),
            Err(_) => *unreadable += 1,
        }
    }
    children.sort_unstable_by(|a, b| b.cmp(a));
    pending.extend(children);
}

/// The lowercase hex SHA-256 of a file, streamed; None when stopped part way.
fn hash_file(path: &Path, buf: &mut [u8], walk: &Walk) -> io::Result<Option<String>> {
    let mut file = File::open(path)?;
    let mut context = digest::Context::new(&digest::SHA256);
    loop {
        if !walk.go_on() {
            return Ok(None);
        }
        match file.read(buf) {
            Ok(0) => break,
            Ok(n) => context.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(hex(context.finish().as_ref())))
}

/// Lowercase hex, the blocklist's form.
fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::super::{TaskPayload, execute};
    use super::*;

    fn sha256_hex(data: &[u8]) -> String {
        hex(digest::digest(&digest::SHA256, data).as_ref())
    }

    async fn run_scan(paths: Vec<String>, blocklist: Vec<String>) -> Outcome {
        execute(
            &TaskPayload::Scan { paths, blocklist },
            0,
            Steering::unsteered(),
            None,
        )
        .await
    }

    fn path_string(path: &Path) -> String {
        path.to_str().unwrap().to_string()
    }

    #[test]
    fn hex_matches_a_known_digest() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test]
    async fn finds_planted_files_without_following_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("a/b/c")).unwrap();
        fs::create_dir_all(root.join("d")).unwrap();
        let bad_one = root.join("a/b/c/evil.bin");
        let bad_two = root.join("d/also-evil");
        fs::write(&bad_one, b"malware one").unwrap();
        fs::write(&bad_two, b"malware two").unwrap();
        fs::write(root.join("a/clean.txt"), b"clean").unwrap();
        fs::write(root.join("a/b/empty"), b"").unwrap();
        fs::write(root.join("top.txt"), vec![7u8; 200_000]).unwrap();
        symlink(&bad_one, root.join("d/link-to-evil")).unwrap();
        symlink(root.join("a"), root.join("d/link-to-dir")).unwrap();
        let locked = root.join("a/locked");
        fs::write(&locked, b"locked").unwrap();
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
        // As root, mode 000 is still readable: then the file counts as scanned.
        let locked_readable = File::open(&locked).is_ok();
        let dangling = root.join("vanished");

        let blocklist = vec![
            sha256_hex(b"malware one").to_uppercase(),
            sha256_hex(b"malware two"),
        ];
        let outcome = run_scan(vec![path_string(root), path_string(&dangling)], blocklist).await;

        let Details::Scan {
            files_scanned,
            unreadable,
            matches,
        } = &outcome.details
        else {
            panic!("not scan details: {outcome:?}");
        };
        let mut found: Vec<&str> = matches.iter().map(|m| m.path.as_str()).collect();
        found.sort_unstable();
        assert_eq!(found, [path_string(&bad_one), path_string(&bad_two)]);
        assert_eq!(matches[0].sha256, sha256_hex(b"malware one"));
        let (expected_scanned, expected_unreadable) = if locked_readable { (6, 1) } else { (5, 2) };
        assert_eq!(*files_scanned, expected_scanned);
        assert_eq!(*unreadable, expected_unreadable);
        assert_eq!(outcome.state, DeviceState::Warning);
        assert_eq!(outcome.progress, 100);
        let expected = format!(
            "2 files matched the blocklist ({expected_scanned} scanned); {expected_unreadable} unreadable"
        );
        assert_eq!(outcome.description, expected);
    }

    #[tokio::test]
    async fn clean_tree_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("one"), b"1").unwrap();
        fs::write(dir.path().join("two"), b"2").unwrap();
        let outcome = run_scan(vec![path_string(dir.path())], vec![sha256_hex(b"3")]).await;
        assert_eq!(outcome.state, DeviceState::Succeeded);
        assert_eq!(outcome.description, "2 files scanned, no match");
    }

    #[tokio::test]
    async fn only_unreadable_is_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("one"), b"1").unwrap();
        let paths = vec![
            path_string(dir.path()),
            path_string(&dir.path().join("gone")),
        ];
        let outcome = run_scan(paths, vec![]).await;
        assert_eq!(outcome.state, DeviceState::Warning);
        assert_eq!(
            outcome.description,
            "1 file scanned, no match; 1 unreadable"
        );
    }

    #[tokio::test]
    async fn bad_blocklist_entry_fails() {
        let dir = tempfile::tempdir().unwrap();
        let blocklist = vec![sha256_hex(b"x"), "not-a-hash".to_string()];
        let outcome = run_scan(vec![path_string(dir.path())], blocklist).await;
        assert_eq!(outcome.state, DeviceState::Failed);
        assert_eq!(outcome.description, "blocklist entry 2 is not a SHA-256");
        let mut non_hex = sha256_hex(b"x");
        non_hex.replace_range(0..1, "g");
        let outcome = run_scan(vec![], vec![non_hex]).await;
        assert_eq!(outcome.description, "blocklist entry 1 is not a SHA-256");
    }

    #[tokio::test]
    async fn matches_are_counted_beyond_the_listed_ones() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..MAX_SCAN_MATCHES + 5 {
            fs::write(dir.path().join(format!("f{i:05}")), b"same").unwrap();
        }
        let outcome = run_scan(vec![path_string(dir.path())], vec![sha256_hex(b"same")]).await;
        let Details::Scan {
            files_scanned,
            matches,
            ..
        } = &outcome.details
        else {
            panic!("not scan details: {outcome:?}");
        };
        assert_eq!(*files_scanned, (MAX_SCAN_MATCHES + 5) as u64);
        assert_eq!(matches.len(), MAX_SCAN_MATCHES);
        assert!(matches[0].path.ends_with("f00000"));
        assert!(
            outcome
                .description
                .starts_with("1005 files matched the blocklist")
        );
    }

    #[test]
    fn a_stopped_walk_reports_nothing() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("one"), b"1").unwrap();
        let walk = Walk::default();
        walk.ask(Control::Cancel);
        assert!(scan(&[path_string(dir.path())], &HashSet::new(), &walk).is_none());
    }

    #[test]
    fn a_paused_walk_holds_and_goes_on_to_the_end() {
        let dir = tempfile::tempdir().unwrap();
        for n in 0..40 {
            fs::write(dir.path().join(format!("f{n:02}")), [n]).unwrap();
        }
        let walk = Arc::new(Walk::default());
        walk.ask(Control::Pause);
        let paths = vec![path_string(dir.path())];
        let walking = {
            let walk = Arc::clone(&walk);
            std::thread::spawn(move || scan(&paths, &HashSet::new(), &walk))
        };
        std::thread::sleep(Duration::from_millis(300));
        assert!(walk.paused.load(Ordering::Relaxed), "holds while paused");
        assert_eq!(walk.hashed.load(Ordering::Relaxed), 0);
        assert!(!walking.is_finished());
        walk.ask(Control::Go);
        let tally = walking.join().unwrap().expect("went on to the end");
        assert_eq!(tally.files_scanned, 40);
        assert_eq!(walk.percent(), 100);
        assert!(!walk.paused.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn cancelled_before_start() {
        let (tx, steering, _reports) = Steering::new();
        tx.send(Control::Cancel).unwrap();
        let payload = TaskPayload::Scan {
            paths: vec!["/".to_string()],
            blocklist: vec![],
        };
        let outcome = execute(&payload, 0, steering, None).await;
        assert_eq!(outcome.description, "cancelled");
    }
}
