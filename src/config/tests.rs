//! Unit tests of the server config: every key checked, errors naming the key.

use super::*;

pub(super) const GOOD: &str = r#"
name = "branch-1"
data = "data/branch-1.redb"
listen = "127.0.0.1:13001"
[tls]
ca = "../certs/ca.pem"
cert = "../certs/branch-1.pem"
key = "../certs/branch-1.key"
[parent]
address = "127.0.0.1"
port = 13000
fingerprint = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
"#;

pub(super) fn parse(text: &str) -> Result<ServerConfig, ConfigError> {
    ServerConfig::parse(text, Path::new("cfg.toml"), Path::new("/etc/canopy"))
}

#[test]
fn good_config_resolves_paths_against_its_directory() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.data, Path::new("/etc/canopy/data/branch-1.redb"));
    assert_eq!(c.parent.unwrap().dial.unwrap().port, 13000);
    assert_eq!(c.link, LinkPolicy::default());
}

pub(super) fn error_of(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn a_passive_secondary_names_no_parent_address() {
    let passive = GOOD.replace("address = \"127.0.0.1\"\nport = 13000", "passive = true");
    let parent = parse(&passive).unwrap().parent.unwrap();
    assert!(parent.dial.is_none());
    let both = GOOD.replace("port = 13000", "port = 13000\npassive = true");
    assert!(error_of(&both).contains("`parent.address`"));
    let neither = GOOD.replace("address = \"127.0.0.1\"\n", "");
    assert!(error_of(&neither).contains("parent.passive = true"));
}

#[test]
fn bad_values_name_the_key() {
    assert!(error_of(&GOOD.replace("port = 13000", "port = 70000")).contains("`parent.port`"));
    assert!(error_of(&GOOD.replace("sha256:00", "zz")).contains("`parent.fingerprint`"));
    assert!(error_of(&GOOD.replace("127.0.0.1:13001", "nowhere")).contains("`listen`"));
    assert!(error_of(&GOOD.replace("\"branch-1\"", "\"bad name\"")).contains("`name`"));
    let with_link = format!("{GOOD}\n[link]\ndegraded_after = 5\nfailed_after = 2\n");
    assert!(error_of(&with_link).contains("`link.failed_after`"));
    let short = format!("{GOOD}\n[[enrollment]]\ntoken = \"short\"\n");
    assert!(error_of(&short).contains("`enrollment.token`"));
    let no_conns = format!("{GOOD}\n[limits]\nmax_connections_per_address = 0\n");
    assert!(error_of(&no_conns).contains("`limits.max_connections_per_address`"));
    let no_pending = format!("{GOOD}\n[limits]\nmax_pending_devices = 0\n");
    assert!(error_of(&no_pending).contains("`limits.max_pending_devices`"));
    for key in ["max_devices", "max_secondaries", "max_virtual_servers"] {
        let none = format!("{GOOD}\n[limits]\n{key} = 0\n");
        assert!(
            error_of(&none).contains(&format!("`limits.{key}`")),
            "{key}"
        );
    }
    let limits = parse(GOOD).unwrap().limits;
    assert_eq!(
        (
            limits.max_devices,
            limits.max_secondaries,
            limits.max_virtual_servers
        ),
        (100_000, 500, 500)
    );
    let no_login = format!("{GOOD}\n[admin]\nlogin_timeout_s = 0\n");
    assert!(error_of(&no_login).contains("`admin.login_timeout_s`"));
    let never = format!("{GOOD}\n[change_log]\ntrim_every_s = 0\n");
    assert!(error_of(&never).contains("`change_log.trim_every_s`"));
    let few = format!("{GOOD}\n[events]\nkeep = 5\n");
    assert!(error_of(&few).contains("`events.keep`"));
    assert_eq!(parse(GOOD).unwrap().events.keep, EVENTS_KEEP);
    assert_eq!(parse(GOOD).unwrap().events.keep_days, EVENTS_KEEP_DAYS);
    let kept = format!("{GOOD}\n[events]\nkeep = 500\nkeep_days = 7\n");
    assert_eq!(parse(&kept).unwrap().events.keep, 500);
    assert_eq!(parse(&kept).unwrap().events.keep_days, 7);
    let none = format!("{GOOD}\n[events]\nkeep_days = 0\n");
    assert!(error_of(&none).contains("`events.keep_days`"));
    assert_eq!(parse(GOOD).unwrap().deleted_keep_days, DELETED_KEEP_DAYS);
    let kept = format!("{GOOD}\n[tasks]\ndeleted_keep_days = 7\n");
    assert_eq!(parse(&kept).unwrap().deleted_keep_days, 7);
    let none = format!("{GOOD}\n[tasks]\ndeleted_keep_days = 0\n");
    assert!(error_of(&none).contains("`tasks.deleted_keep_days`"));
    // Found by fuzzing: minutes times 60 overflowed (a panic, or a wrapped-around TTL).
    for minutes in ["9223372036854775807", "307445734561825861", "525601"] {
        let ttl = format!("{GOOD}\n[admin]\nsession_ttl_minutes = {minutes}\n");
        assert!(
            error_of(&ttl).contains("`admin.session_ttl_minutes`"),
            "{minutes}"
        );
    }
    let year = format!("{GOOD}\n[admin]\nsession_ttl_minutes = 525600\n");
    assert_eq!(parse(&year).unwrap().session_ttl.as_secs(), 525_600 * 60);
}

/// The examples in `config/`, as README's quick start uses them, with a fingerprint in
/// place of the placeholder; and with the `backups` line of the primary's uncommented.
fn examples() -> Vec<(&'static str, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut out = Vec::new();
    for name in [
        "primary",
        "secondary",
        "secondary-of-secondary",
        "secondary-dmz",
    ] {
        let text = std::fs::read_to_string(dir.join(format!("{name}.toml"))).unwrap();
        let fixed: String = text
            .lines()
            .map(|line| match line.starts_with("fingerprint") {
                true => format!("fingerprint = \"sha256:{}\"\n", "00".repeat(32)),
                false => format!("{line}\n"),
            })
            .collect();
        out.push((name, fixed));
    }
    let primary = out[0].1.replace("# backups = ", "backups = ");
    assert!(primary.contains("\nbackups = \"../data/backups\""));
    out.push(("primary with backups", primary));
    out
}

#[test]
fn the_example_configs_load_from_any_directory() {
    let root = tempfile::tempdir().unwrap();
    let conf = root.path().join("config");
    std::fs::create_dir(&conf).unwrap();
    let real = std::fs::canonicalize(root.path()).unwrap();
    for (name, text) in examples() {
        // As `parse` is given them: relative paths from the file's directory.
        let c = ServerConfig::parse(&text, Path::new("x.toml"), &conf)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(c.backups, root.path().join("data/backups"), "{name}");
        // As `canopy serve --config` loads them.
        let file = conf.join("server.toml");
        std::fs::write(&file, &text).unwrap();
        let c = ServerConfig::load(&file).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(c.backups, real.join("data/backups"), "{name}");
        assert_eq!(c.data.parent(), Some(real.join("config/../data").as_path()));
    }
}

#[test]
fn the_example_configs_serve_metrics_on_distinct_loopback_ports() {
    let mut seen = Vec::new();
    for (name, text) in examples() {
        let c = parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let metrics = c.metrics.unwrap_or_else(|| panic!("{name}: no [metrics]"));
        assert!(metrics.ip().is_loopback(), "{name}");
        assert_ne!(metrics.port(), c.listen.port(), "{name}");
        if name != "primary with backups" {
            assert!(!seen.contains(&metrics.port()), "{name}: {metrics} taken");
            seen.push(metrics.port());
        }
    }
    assert_eq!(seen.len(), 4);
}

#[test]
fn unknown_and_missing_keys_are_named() {
    let e = error_of(&GOOD.replace("listen =", "lisen ="));
    assert!(e.contains("lisen"), "{e}");
    let e = error_of(&GOOD.replace("data = \"data/branch-1.redb\"", ""));
    assert!(e.contains("data"), "{e}");
}

#[test]
fn metrics_are_served_only_with_their_section() {
    assert_eq!(parse(GOOD).unwrap().metrics, None);
    let default = format!("{GOOD}\n[metrics]\n");
    let want: SocketAddr = METRICS_LISTEN.parse().unwrap();
    assert_eq!(parse(&default).unwrap().metrics, Some(want));
    assert!(want.ip().is_loopback());
    let set = format!("{GOOD}\n[metrics]\nlisten = \"127.0.0.1:0\"\n");
    assert_eq!(
        parse(&set).unwrap().metrics,
        Some("127.0.0.1:0".parse().unwrap())
    );
    for bad in ["nonsense", "127.0.0.1", "localhost:13298", ""] {
        let text = format!("{GOOD}\n[metrics]\nlisten = \"{bad}\"\n");
        assert!(error_of(&text).contains("`metrics.listen`"), "{bad}");
    }
    let unknown = format!("{GOOD}\n[metrics]\nport = 13298\n");
    assert!(error_of(&unknown).contains("port"));
}

#[test]
fn the_web_listener_defaults_to_the_servers_address_and_certificate() {
    assert_eq!(parse(GOOD).unwrap().web, None);
    // `[parent]` is the last table of GOOD: the section goes after it.
    let web = parse(&format!("{GOOD}\n[web]\n")).unwrap().web.unwrap();
    assert_eq!(web.listen, "127.0.0.1:13299".parse().unwrap());
    assert_eq!(web.cert, Path::new("/etc/canopy/../certs/branch-1.pem"));
    assert_eq!(web.key, Path::new("/etc/canopy/../certs/branch-1.key"));
    let own = format!(
        "{GOOD}\n[web]\nlisten = \"0.0.0.0:8443\"\ncert = \"browser.pem\"\nkey = \"/k/browser.key\"\n"
    );
    let web = parse(&own).unwrap().web.unwrap();
    assert_eq!(web.listen, "0.0.0.0:8443".parse().unwrap());
    assert_eq!(web.cert, Path::new("/etc/canopy/browser.pem"));
    assert_eq!(web.key, Path::new("/k/browser.key"));
    for (section, key) in [
        ("listen = \"13299\"", "web.listen"),
        ("listen = \"127.0.0.1:13001\"", "web.listen"),
        ("cert = \"browser.pem\"", "web.key"),
        ("key = \"browser.key\"", "web.cert"),
        ("port = 1", "port"),
    ] {
        let error = error_of(&format!("{GOOD}\n[web]\n{section}\n"));
        assert!(error.contains(key), "{section}: {error}");
    }
}
