//! The Debian package: built from the test binary by `packaging/deb/build.sh`, the script
//! `make deb` runs on the release binary; installed with dpkg into a temporary root (its own
//! admin directory, the maintainer scripts run outside a chroot with `DPKG_ROOT` set), then
//! checked there: every file in its place with its mode, the system user, the configs
//! parsing, the units verified by systemd-analyze; and purged.
//!
//! Not run as root, every command that acts on the root runs under fakeroot, whose record of
//! owners and modes the checks read. Skipped, saying so, only where dpkg is missing (not a
//! Debian system).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use canopy::agent::config::AgentConfig;
use canopy::config::ServerConfig;

const BINARY: &str = env!("CARGO_BIN_EXE_canopy");
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

fn output(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

/// Runs `command`, which must succeed; its stdout.
fn run(command: &mut Command) -> String {
    let out = output(command);
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The temporary root the package is installed into, and how commands act on it.
struct Root {
    dir: PathBuf,
    /// dpkg's log, beside the root rather than in /var/log/dpkg.log.
    log: PathBuf,
    /// Not root: fakeroot's saved state, which every command acting on the root loads and
    /// saves, so owners set by dpkg and the postinst are seen by the next one.
    fakeroot: Option<PathBuf>,
}

impl Root {
    fn new(tmp: &Path) -> Root {
        // SAFETY: geteuid cannot fail.
        let fakeroot = (unsafe { libc::geteuid() } != 0).then(|| {
            assert!(
                on_path("fakeroot"),
                "not root and no fakeroot: `make test-deps` installs it"
            );
            let state = tmp.join("fakeroot.state");
            std::fs::write(&state, "").unwrap();
            state
        });
        Root {
            dir: tmp.join("root"),
            log: tmp.join("dpkg.log"),
            fakeroot,
        }
    }

    /// `program`, as root (or under fakeroot).
    fn command(&self, program: &str) -> Command {
        match &self.fakeroot {
            None => Command::new(program),
            Some(state) => {
                let mut command = Command::new("fakeroot");
                command
                    .arg("-i")
                    .arg(state)
                    .arg("-s")
                    .arg(state)
                    .arg("--")
                    .arg(program);
                command
            }
        }
    }

    /// dpkg acting on the root: its admin directory is `root/var/lib/dpkg`, and the
    /// maintainer scripts run here with `DPKG_ROOT=root` (they change that root's accounts,
    /// never this machine's). The include pattern undoes any `path-exclude` of this
    /// machine's dpkg.cfg.d (minimal images drop manual pages and documentation).
    fn dpkg(&self) -> Command {
        let mut command = self.command("dpkg");
        command
            .arg(format!("--root={}", self.dir.display()))
            .arg(format!("--log={}", self.log.display()))
            .arg("--force-script-chrootless")
            .arg("--path-include=*");
        command
    }

    /// (uid, gid, permission bits) of a path in the root.
    fn owner_mode(&self, path: &str) -> (u32, u32, u32) {
        let full = self.dir.join(path.trim_start_matches('/'));
        assert!(
            full.symlink_metadata().is_ok(),
            "{path} is not installed ({})",
            full.display()
        );
        let stat = run(self.command("stat").args(["-c", "%u %g %a"]).arg(&full));
        let f: Vec<&str> = stat.split_whitespace().collect();
        assert_eq!(f.len(), 3, "{stat}");
        (
            f[0].parse().unwrap(),
            f[1].parse().unwrap(),
            u32::from_str_radix(f[2], 8).unwrap(),
        )
    }
}

/// The minimal system the postinst meets: root's account, and a dpkg database.
fn prepare_root(root: &Path) {
    for dir in [
        "etc",
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/log",
    ] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    for (file, text) in [
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
        ("etc/group", "root:x:0:\n"),
        ("etc/shadow", "root:*:19000:0:99999:7:::\n"),
        ("etc/gshadow", "root:*::\n"),
        ("var/lib/dpkg/status", ""),
        ("var/lib/dpkg/available", ""),
    ] {
        std::fs::write(root.join(file), text).unwrap();
    }
    // useradd reads the id ranges of system accounts from the root's login.defs.
    if Path::new("/etc/login.defs").exists() {
        std::fs::copy("/etc/login.defs", root.join("etc/login.defs")).unwrap();
    }
}

/// The uid and gid of `name` in the root's passwd file, with its home and shell.
fn account(root: &Path, name: &str) -> Option<(u32, u32, String, String)> {
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() == 7 && f[0] == name).then(|| {
            (
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
                f[5].to_string(),
                f[6].to_string(),
            )
        })
    })
}

fn gunzip(path: &Path) -> String {
    run(Command::new("gzip").arg("-dc").arg(path))
}

/// The fields of the package's control file.
fn control_fields(deb: &Path) -> BTreeMap<String, String> {
    let text = run(Command::new("dpkg-deb").arg("--field").arg(deb));
    let mut fields = BTreeMap::new();
    let mut last = String::new();
    for line in text.lines() {
        if line.starts_with(' ') {
            let value: &mut String = fields.get_mut(&last).unwrap();
            value.push('\n');
            value.push_str(line);
        } else if let Some((key, value)) = line.split_once(':') {
            last = key.to_string();
            fields.insert(last.clone(), value.trim().to_string());
        }
    }
    fields
}

#[test]
fn the_package_installs_into_a_root_with_everything_in_place() {
    if !on_path("dpkg") || !on_path("dpkg-deb") {
        eprintln!(
            "SKIPPED tests/package.rs: dpkg is not installed (not a Debian system), so the \
             Debian package can be neither built nor installed here"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    let arch = run(Command::new("dpkg").arg("--print-architecture"))
        .trim()
        .to_string();

    // Built as `make deb` builds it, gzip for speed.
    let printed = run(Command::new(repo().join("packaging/deb/build.sh"))
        .arg(BINARY)
        .arg(VERSION)
        .arg(&out_dir)
        .env("DEB_COMPRESSION", "gzip"));
    let deb = out_dir.join(format!("canopy_{VERSION}_{arch}.deb"));
    assert_eq!(printed.lines().last(), deb.to_str(), "{printed}");

    // Its control file.
    let fields = control_fields(&deb);
    assert_eq!(fields["Package"], "canopy");
    assert_eq!(fields["Version"], VERSION);
    assert_eq!(fields["Architecture"], arch);
    assert_eq!(fields["Section"], "admin");
    assert_eq!(fields["Priority"], "optional");
    assert!(fields["Maintainer"].contains('<'), "{fields:?}");
    assert!(fields["Installed-Size"].parse::<u64>().unwrap() > 1000);
    let depends: Vec<&str> = fields["Depends"].split(',').map(str::trim).collect();
    assert!(
        depends.iter().any(|d| d.starts_with("libc6")),
        "{depends:?}"
    );
    assert!(depends.contains(&"passwd"), "{depends:?}");
    assert!(fields["Description"].starts_with("open Administration Server"));
    let conffiles = run(Command::new("dpkg-deb")
        .arg("--info")
        .arg(&deb)
        .arg("conffiles"));
    assert_eq!(
        conffiles.lines().collect::<Vec<_>>(),
        ["/etc/canopy/canopy.toml", "/etc/canopy/agent.toml"]
    );
    // Every file root's, whoever built it.
    let contents = run(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    for line in contents.lines() {
        assert_eq!(line.split_whitespace().nth(1), Some("root/root"), "{line}");
    }

    // Installed into an empty root. Its dpkg database lists no package, so the dependencies
    // (libc6, passwd) cannot be met there: --force-depends, for them only.
    let target = Root::new(tmp.path());
    let root = target.dir.clone();
    prepare_root(&root);
    run(target
        .dpkg()
        .arg("--force-depends")
        .arg("--install")
        .arg(&deb));
    let status = run(target.dpkg().arg("--status").arg("canopy"));
    assert!(status.contains("Status: install ok installed"), "{status}");

    // The system user, made by the postinst.
    let (uid, gid, home, shell) = account(&root, "canopy").expect("no user canopy");
    assert!(uid > 0 && uid < 1000, "uid {uid}");
    assert_eq!(home, "/var/lib/canopy");
    assert_eq!(shell, "/usr/sbin/nologin");
    let group = std::fs::read_to_string(root.join("etc/group")).unwrap();
    assert!(group.contains(&format!("canopy:x:{gid}:")), "{group}");

    // Every file with its owner and mode. The server's config and certificate directory
    // belong to its group (dpkg-statoverride, so dpkg keeps them so); its state directory
    // to it, as systemd's StateDirectory= would make it.
    for (path, expected) in [
        ("/usr/bin/canopy", (0, 0, 0o755)),
        ("/lib/systemd/system/canopy.service", (0, 0, 0o644)),
        ("/lib/systemd/system/canopy-agent.service", (0, 0, 0o644)),
        ("/etc/canopy", (0, 0, 0o755)),
        ("/etc/canopy/canopy.toml", (0, gid, 0o640)),
        ("/etc/canopy/certs", (0, gid, 0o750)),
        ("/etc/canopy/agent.toml", (0, 0, 0o600)),
        ("/var/lib/canopy", (uid, gid, 0o700)),
        ("/var/lib/canopy-agent", (0, 0, 0o700)),
        ("/usr/share/man/man1/canopy.1.gz", (0, 0, 0o644)),
        ("/usr/share/man/man1/canopy-serve.1.gz", (0, 0, 0o644)),
        ("/usr/share/man/man1/canopy-agent.1.gz", (0, 0, 0o644)),
        ("/usr/share/man/man1/canopy-task-create.1.gz", (0, 0, 0o644)),
        (
            "/usr/share/bash-completion/completions/canopy",
            (0, 0, 0o644),
        ),
        ("/usr/share/zsh/vendor-completions/_canopy", (0, 0, 0o644)),
        (
            "/usr/share/fish/vendor_completions.d/canopy.fish",
            (0, 0, 0o644),
        ),
        ("/usr/share/doc/canopy/copyright", (0, 0, 0o644)),
        ("/usr/share/doc/canopy/README.md.gz", (0, 0, 0o644)),
        ("/usr/share/doc/canopy/examples/primary.toml", (0, 0, 0o644)),
        ("/usr/share/doc/canopy/examples/agent.toml", (0, 0, 0o644)),
    ] {
        assert_eq!(target.owner_mode(path), expected, "{path}");
    }
    // dpkg-statoverride names the group as this machine's NSS names its id, in both
    // directions (the id is what counts, and was checked above): only the modes are compared.
    let overrides = run(Command::new("dpkg-statoverride")
        .arg(format!("--root={}", root.display()))
        .arg("--list"));
    let overridden: Vec<(&str, &str)> = overrides
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() == 4 && f[0] == "root").then(|| (f[3], f[2]))
        })
        .collect();
    assert_eq!(
        overridden,
        [
            ("/etc/canopy/canopy.toml", "640"),
            ("/etc/canopy/certs", "750")
        ],
        "{overrides}"
    );

    // The installed program runs, and completes and documents itself.
    let installed = root.join("usr/bin/canopy");
    let version = run(Command::new(&installed).arg("--version"));
    assert_eq!(version.trim(), format!("canopy {VERSION}"));
    let bash =
        std::fs::read_to_string(root.join("usr/share/bash-completion/completions/canopy")).unwrap();
    assert_eq!(
        bash,
        run(Command::new(&installed).args(["completions", "bash"]))
    );
    assert!(bash.contains("complete -F _canopy"), "{bash}");
    let zsh =
        std::fs::read_to_string(root.join("usr/share/zsh/vendor-completions/_canopy")).unwrap();
    assert!(zsh.starts_with("#compdef canopy"), "{zsh}");
    let fish =
        std::fs::read_to_string(root.join("usr/share/fish/vendor_completions.d/canopy.fish"))
            .unwrap();
    assert!(fish.contains("complete -c canopy"), "{fish}");
    let page = gunzip(&root.join("usr/share/man/man1/canopy.1.gz"));
    assert!(page.contains(".TH CANOPY 1"), "{page}");
    assert!(page.contains("completions"), "{page}");
    assert_eq!(page, run(Command::new(&installed).arg("man")));
    let serve = gunzip(&root.join("usr/share/man/man1/canopy-serve.1.gz"));
    assert!(serve.contains("\\-\\-config"), "{serve}");
    assert!(gunzip(&root.join("usr/share/doc/canopy/README.md.gz")).starts_with("# Canopy"));

    // The configs parse as the services read them, and agree with the units.
    let server =
        ServerConfig::load(&root.join("etc/canopy/canopy.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(server.data, Path::new("/var/lib/canopy/canopy.redb"));
    assert!(
        server.backups.starts_with("/var/lib/canopy"),
        "{:?}",
        server.backups
    );
    for path in [&server.ca, &server.cert, &server.key] {
        assert!(path.starts_with("/etc/canopy/certs"), "{path:?}");
    }
    let agent =
        AgentConfig::load(&root.join("etc/canopy/agent.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(agent.data, Path::new("/var/lib/canopy-agent/agent.redb"));
    assert!(agent.ca.starts_with("/etc/canopy/certs"), "{:?}", agent.ca);
    assert_eq!(
        agent.token, None,
        "no token shipped: every device would share it"
    );
    assert!(
        server_enrolls_nobody(&root),
        "no enrollment token shipped in the server's config"
    );
    let unit =
        |name: &str| std::fs::read_to_string(root.join("lib/systemd/system").join(name)).unwrap();
    let (server_unit, agent_unit) = (unit("canopy.service"), unit("canopy-agent.service"));
    assert!(
        server_unit
            .contains("\nExecStart=/usr/bin/canopy serve --config /etc/canopy/canopy.toml\n")
    );
    assert!(server_unit.contains("\nUser=canopy\n"));
    assert!(server_unit.contains("\nStateDirectory=canopy\n"));
    assert!(server_unit.contains("\nCapabilityBoundingSet=\n"));
    assert!(!server_unit.contains("\nExecReload="));
    assert!(
        agent_unit.contains("\nExecStart=/usr/bin/canopy agent --config /etc/canopy/agent.toml\n")
    );
    assert!(agent_unit.contains("\nStateDirectory=canopy-agent\n"));
    for setting in [
        "NoNewPrivileges=",
        "ProtectSystem=",
        "ProtectHome=",
        "PrivateTmp=",
    ] {
        assert!(
            !agent_unit.contains(&format!("\n{setting}")),
            "the agent's tasks need what {setting} takes away"
        );
    }

    verify_units(&root, tmp.path());

    // Purged: the files and the overrides go; the state directories and the user stay.
    run(target.dpkg().arg("--purge").arg("canopy"));
    for gone in [
        "usr/bin/canopy",
        "lib/systemd/system/canopy.service",
        "etc/canopy/canopy.toml",
        "etc/canopy/agent.toml",
        "usr/share/man/man1/canopy.1.gz",
    ] {
        assert!(!root.join(gone).exists(), "{gone} is still there");
    }
    // --list fails when it lists nothing.
    let overrides = output(
        Command::new("dpkg-statoverride")
            .arg(format!("--root={}", root.display()))
            .arg("--list"),
    );
    assert_eq!(String::from_utf8_lossy(&overrides.stdout), "");
    assert!(root.join("var/lib/canopy").is_dir());
    assert!(account(&root, "canopy").is_some());
}

/// The shipped server config lists no `[[enrollment]]` (commented out).
fn server_enrolls_nobody(root: &Path) -> bool {
    let text = std::fs::read_to_string(root.join("etc/canopy/canopy.toml")).unwrap();
    !text
        .lines()
        .any(|line| line.trim_start().starts_with("[[enrollment]]"))
}

/// `systemd-analyze verify` on both units, and `systemd-analyze security` on the server's.
///
/// verify checks that ExecStart's program exists on this machine, where /usr/bin/canopy is
/// not: it is given copies of the units whose ExecStart names the installed binary in the
/// temporary root instead (nothing else differs). Its check of `Documentation=man:...` finds
/// the pages installed in the root through MANPATH. `--root` is no way out: the units'
/// dependencies (network-online.target, multi-user.target) are not in the temporary root.
fn verify_units(root: &Path, tmp: &Path) {
    let analyze = "systemd-analyze";
    assert!(
        on_path(analyze),
        "{analyze} is missing: `make test-deps` installs systemd"
    );
    let dir = tmp.join("verify");
    std::fs::create_dir_all(&dir).unwrap();
    let installed = root.join("usr/bin/canopy");
    let mut units: Vec<PathBuf> = Vec::new();
    for name in ["canopy.service", "canopy-agent.service"] {
        let text = std::fs::read_to_string(root.join("lib/systemd/system").join(name)).unwrap();
        let from = "\nExecStart=/usr/bin/canopy ";
        assert_eq!(text.matches(from).count(), 1, "{name}");
        let text = text.replace(from, &format!("\nExecStart={} ", installed.display()));
        let copy = dir.join(name);
        std::fs::write(&copy, text).unwrap();
        units.push(copy);
    }
    let man = if on_path("man") {
        "--man=yes"
    } else {
        "--man=no"
    };
    let out = output(
        Command::new(analyze)
            .arg("verify")
            .arg(man)
            .args(&units)
            .env("MANPATH", root.join("usr/share/man")),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify ({}):\n{stderr}",
        out.status
    );
    // The server's exposure, on systemd's scale of 0 (locked down) to 10: at most 2.0 ("OK").
    run(Command::new(analyze)
        .args(["security", "--offline=yes", "--no-pager", "--threshold=20"])
        .arg(&units[0]));
}
