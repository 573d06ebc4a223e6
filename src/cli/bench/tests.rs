//! Unit tests of what `canopy bench` computes and prints without running a scenario: the
//! figures' summaries, what it reads from /proc, the fanout tree, and each scenario's JSON.

use clap::Parser;
use serde_json::{Value, json};

use super::change::ChangeRun;
use super::connect::ConnectRun;
use super::fanout::{FanoutRun, Milestones, TIERS, TreeShape};
use super::figures::{Machine, figures_text, machine, memory_gib, spread};
use super::ingest::IngestRun;
use super::process::{cpu_seconds_in, rss_mib_in, udp_datagrams_sent_in};
use super::*;
use crate::cli::{Cli, Command};

/// The keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    keys
}

/// Asserts that `value[key]` is a figure's spread with these min, median and max.
fn assert_spread(value: &Value, key: &str, min: f64, median: f64, max: f64) {
    let figure = &value[key];
    assert_eq!(keys(figure), ["max", "median", "min"], "{key}: {value}");
    assert_eq!(
        [&figure["min"], &figure["median"], &figure["max"]],
        [&json!(min), &json!(median), &json!(max)],
        "{key}"
    );
}

fn a_machine() -> Machine {
    Machine {
        cores: 2,
        memory_gib: 3.5,
    }
}

#[test]
fn a_spread_is_the_min_median_and_max_in_any_order() {
    let s = spread(&[3.0, 1.0, 2.0]);
    assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
    // Of an even number of values, the median is the upper of the two middle ones.
    let s = spread(&[4.0, 1.0, 3.0, 2.0]);
    assert_eq!((s.min, s.median, s.max), (1.0, 3.0, 4.0));
    let s = spread(&[5.0]);
    assert_eq!((s.min, s.median, s.max), (5.0, 5.0, 5.0));
    let s = spread(&[-1.0, 0.5]);
    assert_eq!((s.min, s.median, s.max), (-1.0, 0.5, 0.5));
    let s = spread(&[]);
    assert!(
        s.min.is_nan() && s.median.is_nan() && s.max.is_nan(),
        "{s:?}"
    );
}

#[test]
fn a_spread_is_json_with_min_median_and_max() {
    assert_eq!(
        serde_json::to_value(spread(&[2.0, 1.0])).unwrap(),
        json!({"min": 1.0, "median": 2.0, "max": 2.0})
    );
    // JSON has no NaN: a figure of no runs is null.
    assert_eq!(
        serde_json::to_value(spread(&[])).unwrap(),
        json!({"min": null, "median": null, "max": null})
    );
}

#[test]
fn figures_print_one_aligned_line_each() {
    let summary = json!({
        "results_per_s": {"min": 1.0, "median": 2.5, "max": 12345.678},
        "seconds": {"min": 0.004, "median": 0.005, "max": 0.006},
    });
    let text = figures_text(
        &summary,
        &[
            ("results per second", "results_per_s", "/s"),
            ("seconds per run", "seconds", "s"),
            ("not measured", "missing", "ms"),
        ],
    );
    assert_eq!(
        text,
        "\
results per second         min       1.00  median       2.50  max   12345.68 /s
seconds per run            min       0.00  median       0.01  max       0.01 s
not measured               min        NaN  median        NaN  max        NaN ms
"
    );
    assert_eq!(figures_text(&summary, &[]), "");
}

#[test]
fn the_machine_is_read_from_proc() {
    let meminfo = "MemTotal:       16314336 kB\nMemFree:         1000000 kB\n";
    assert_eq!(memory_gib(meminfo), 15.6);
    assert_eq!(memory_gib("MemTotal: 1048576 kB"), 1.0);
    assert_eq!(memory_gib(""), 0.0);
    assert_eq!(memory_gib("MemTotal: lots"), 0.0);

    let here = serde_json::to_value(machine()).unwrap();
    assert_eq!(keys(&here), ["cores", "memory_gib"]);
    assert!(here["cores"].as_u64().unwrap() >= 1, "{here}");
    assert!(here["memory_gib"].as_f64().unwrap() >= 0.0, "{here}");
}

#[test]
fn cpu_time_and_memory_are_read_from_proc() {
    // utime and stime are the 14th and 15th fields; the name may hold spaces and ')'.
    let stat = "1234 (canopy (x) y) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 8 0";
    assert_eq!(cpu_seconds_in(stat), 3.0);
    assert_eq!(cpu_seconds_in("1 (short) S 1 2"), 0.0);
    assert_eq!(cpu_seconds_in(""), 0.0);

    let status = "Name:\tcanopy\nVmPeak:\t  999999 kB\nVmRSS:\t   20480 kB\n";
    assert_eq!(rss_mib_in(status), 20.0);
    assert!(rss_mib_in("Name:\tcanopy\n").is_nan());

    let snmp = "Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors\nUdp: 10 0 0 4242 0\nUdpLite: InDatagrams OutDatagrams\nUdpLite: 0 7\n";
    assert_eq!(udp_datagrams_sent_in(snmp), 4242);
    assert_eq!(udp_datagrams_sent_in("Ip: 1\n"), 0);
}

#[test]
fn the_fanout_tree_spreads_its_devices_evenly() {
    let shape = TreeShape {
        secondaries: 2,
        per_secondary: 2,
    };
    let plan = shape.plan(40);
    let names: Vec<&str> = plan.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["primary", "s1", "s2", "s1-1", "s1-2", "s2-1", "s2-2"]
    );
    assert_eq!(plan[4].path, "primary/s1/s1-2");
    let depths: Vec<u32> = plan.iter().map(|s| s.depth).collect();
    assert_eq!(depths, [0, 1, 1, 2, 2, 2, 2]);
    let parents: Vec<Option<usize>> = plan.iter().map(|s| s.parent).collect();
    assert_eq!(
        parents,
        [None, Some(0), Some(0), Some(1), Some(1), Some(2), Some(2)]
    );
    // 40 over 7 servers: the first five take one more.
    let devices: Vec<u32> = plan.iter().map(|s| s.devices).collect();
    assert_eq!(devices, [6, 6, 6, 6, 6, 5, 5]);
    assert_eq!(shape.plan(7).iter().map(|s| s.devices).sum::<u32>(), 7);
    // The JSON of a server leaves its parent's index out.
    assert_eq!(
        serde_json::to_value(&plan[3]).unwrap(),
        json!({"name": "s1-1", "path": "primary/s1/s1-1", "depth": 2, "devices": 6})
    );
    let flat = TreeShape {
        secondaries: 3,
        per_secondary: 0,
    };
    assert_eq!(flat.plan(3).len(), 4);
}

#[test]
fn milestones_keep_when_each_share_was_first_seen() {
    let mut m = Milestones::new(100);
    m.observe(0, 1.0);
    assert_eq!(m.text(), "first - / 50% - / 99% - / 100% - ms");
    m.observe(1, 2.0);
    m.observe(50, 3.4);
    m.observe(98, 4.0);
    assert_eq!(m.p99_ms, None);
    m.observe(99, 5.0);
    assert!(!m.done());
    m.observe(100, 6.0);
    m.observe(100, 7.0);
    assert!(m.done());
    assert_eq!(
        (m.first_ms, m.p50_ms, m.p99_ms, m.p100_ms),
        (Some(2.0), Some(3.4), Some(5.0), Some(6.0))
    );
    assert_eq!(m.text(), "first 2 / 50% 3 / 99% 5 / 100% 6 ms");
    // All at once.
    let mut m = Milestones::new(3);
    m.observe(3, 9.0);
    assert_eq!(m.text(), "first 9 / 50% 9 / 99% 9 / 100% 9 ms");
}

#[test]
fn the_json_of_connect() {
    let run = |s: f64| ConnectRun {
        identities_s: s,
        cold_connect_s: 2.0 * s,
        device_list_s: 0.1,
        reconnect_storm_s: 3.0 * s,
        cold_server_cpu_s: 0.5 * s,
        cold_agents_cpu_s: 0.0,
        storm_server_cpu_s: 0.25,
        storm_agents_cpu_s: 0.0,
        server_rss_idle_mib: 10.0,
        server_rss_connected_mib: 20.0,
        server_kib_per_device: 512.0,
        idle_server_us_per_device_s: 4.0,
    };
    let summary = connect::summary(20, 2, &a_machine(), &[run(1.0), run(3.0)]);
    assert_eq!(
        keys(&summary),
        [
            "cold_connect_s",
            "cold_server_us_per_device",
            "device_list_s",
            "devices",
            "identities_s",
            "idle_server_us_per_device_s",
            "machine",
            "reconnect_storm_s",
            "runs",
            "scenario",
            "server_kib_per_device",
            "storm_server_us_per_device",
        ]
    );
    assert_eq!(summary["scenario"], "connect");
    assert_eq!(
        (&summary["devices"], &summary["runs"]),
        (&json!(20), &json!(2))
    );
    assert_eq!(summary["machine"], json!({"cores": 2, "memory_gib": 3.5}));
    assert_spread(&summary, "identities_s", 1.0, 3.0, 3.0);
    assert_spread(&summary, "cold_connect_s", 2.0, 6.0, 6.0);
    assert_spread(&summary, "reconnect_storm_s", 3.0, 9.0, 9.0);
    assert_spread(&summary, "server_kib_per_device", 512.0, 512.0, 512.0);
    assert_spread(
        &summary,
        "cold_server_us_per_device",
        25000.0,
        75000.0,
        75000.0,
    );
    assert_spread(
        &summary,
        "storm_server_us_per_device",
        12500.0,
        12500.0,
        12500.0,
    );
}

#[test]
fn the_json_of_ingest() {
    let run = |seconds: f64| IngestRun {
        seconds,
        results_per_s: 100.0 / seconds,
        jobs: 300,
        commits: 10,
        jobs_per_commit: 30.0,
        server_cpu_s: 0.5,
        agents_cpu_s: 0.25,
        server_cpu_us_per_result: 5000.0,
        datagrams_per_result: 7.0 * seconds,
        stats_max_ms: 3.0,
        stats_median_ms: 1.0,
    };
    let summary = ingest::summary(100, 3, &a_machine(), &[run(2.0), run(1.0), run(4.0)]);
    assert_eq!(
        keys(&summary),
        [
            "agents_cpu_s",
            "counters_exact",
            "datagrams_per_result",
            "devices",
            "jobs_per_commit",
            "machine",
            "results_per_s",
            "runs",
            "scenario",
            "seconds",
            "server_cpu_s",
            "server_cpu_us_per_result",
            "stats_max_ms",
            "stats_median_ms",
        ]
    );
    assert_eq!(summary["scenario"], "ingest");
    assert_eq!(summary["counters_exact"], true);
    assert_spread(&summary, "seconds", 1.0, 2.0, 4.0);
    assert_spread(&summary, "results_per_s", 25.0, 50.0, 100.0);
    assert_spread(&summary, "agents_cpu_s", 0.25, 0.25, 0.25);
    assert_spread(&summary, "datagrams_per_result", 7.0, 14.0, 28.0);
}

#[test]
fn the_json_of_change() {
    let run = |ms: f64| ChangeRun {
        edit_ms: ms,
        first_polled_ms: ms + 1.0,
        median_polled_ms: ms + 2.0,
        all_polled_ms: ms + 3.0,
        median_stamped_ms: ms,
        all_stamped_ms: ms,
        polls: 12,
        poll_rtt_ms: 0.5,
    };
    let summary = change::summary(100, 2, 5, &a_machine(), 42.5, &[run(10.0), run(20.0)]);
    assert_eq!(
        keys(&summary),
        [
            "all_applied",
            "all_polled_ms",
            "all_stamped_ms",
            "create_all_ms",
            "edit_ms",
            "first_polled_ms",
            "machine",
            "median_polled_ms",
            "median_stamped_ms",
            "poll_ms",
            "poll_rtt_ms",
            "runs",
            "scenario",
            "secondaries",
            "virtual_servers",
        ]
    );
    assert_eq!(summary["scenario"], "change");
    assert_eq!(summary["secondaries"], 100);
    assert_eq!(summary["poll_ms"], 5);
    assert_eq!(summary["create_all_ms"], 42.5);
    assert_eq!(summary["virtual_servers"], true);
    assert_eq!(summary["all_applied"], true);
    assert_spread(&summary, "edit_ms", 10.0, 20.0, 20.0);
    assert_spread(&summary, "all_polled_ms", 13.0, 23.0, 23.0);
}

#[test]
fn the_json_of_fanout() {
    let shape = TreeShape {
        secondaries: 2,
        per_secondary: 2,
    };
    let plan = shape.plan(40);
    let seen = |devices: u64, at: f64| {
        let mut m = Milestones::new(devices);
        m.observe(devices, at);
        m
    };
    let run = |at: f64| FanoutRun {
        total: seen(40, at),
        tiers: vec![seen(6, at / 4.0), seen(12, at / 2.0), seen(22, at)],
        polls: 10,
        poll_period_ms: 5.0,
        poll_max_ms: 9.0,
        server_cpu_s: 1.0,
        agents_cpu_s: 2.0,
        started_ms: vec![1.0, 2.0, 3.0],
        finished_ms: vec![at / 4.0, at / 2.0, at],
    };
    let summary = fanout::summary(
        shape,
        &plan,
        2,
        5,
        false,
        &a_machine(),
        &[run(100.0), run(80.0)],
    );
    assert_eq!(
        keys(&summary),
        [
            "agents_cpu_s",
            "devices",
            "devices_in",
            "first_ms",
            "in_process_servers",
            "machine",
            "p100_ms",
            "p50_ms",
            "p99_ms",
            "per_secondary",
            "poll_max_ms",
            "poll_ms",
            "poll_period_ms",
            "reached_100",
            "runs",
            "scenario",
            "secondaries",
            "server_cpu_s",
            "servers",
            "servers_in",
            "tiers",
        ]
    );
    assert_eq!(summary["scenario"], "fanout");
    assert_eq!(summary["devices"], 40);
    assert_eq!(summary["reached_100"], true);
    assert_eq!(summary["in_process_servers"], false);
    assert_eq!(summary["servers_in"], "one `canopy serve` process each");
    assert_eq!(summary["servers"].as_array().unwrap().len(), 7);
    assert_eq!(
        summary["servers"][0],
        json!({"name": "primary", "path": "primary", "depth": 0, "devices": 6})
    );
    for key in ["first_ms", "p50_ms", "p99_ms", "p100_ms"] {
        assert_spread(&summary, key, 80.0, 100.0, 100.0);
    }
    assert_spread(&summary, "poll_period_ms", 5.0, 5.0, 5.0);
    let tiers = summary["tiers"].as_array().unwrap();
    assert_eq!(tiers.len(), TIERS);
    for (depth, tier) in tiers.iter().enumerate() {
        assert_eq!(
            keys(tier),
            [
                "depth",
                "devices",
                "finished_ms",
                "first_ms",
                "p100_ms",
                "p50_ms",
                "p99_ms",
                "servers",
                "started_ms",
            ]
        );
        assert_eq!(tier["depth"], depth);
    }
    let counts: Vec<(u64, u64)> = tiers
        .iter()
        .map(|t| {
            (
                t["servers"].as_u64().unwrap(),
                t["devices"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts, [(1, 6), (2, 12), (4, 22)]);
    assert_spread(&tiers[1], "p100_ms", 40.0, 50.0, 50.0);
    assert_spread(&tiers[2], "started_ms", 3.0, 3.0, 3.0);
    assert_spread(&tiers[0], "finished_ms", 20.0, 25.0, 25.0);

    let here = fanout::summary(shape, &plan, 2, 5, true, &a_machine(), &[]);
    assert_eq!(here["servers_in"], "this process (one tokio runtime)");
    assert_eq!(
        here["p100_ms"],
        json!({"min": null, "median": null, "max": null})
    );
}

#[test]
fn bench_server_configs_keep_links_up_for_many_devices() {
    let text = bench_server_text("primary", 13000, None);
    for expected in [
        "name = \"primary\"",
        "keep_alive_ms = 5000",
        "idle_timeout_ms = 30000",
        "[[enrollment]]\ntoken = \"bench-enrollment-token-0001\"\ngroup = \"Managed devices\"\n",
    ] {
        assert!(text.contains(expected), "{expected:?} not in\n{text}");
    }
    assert!(!text.contains("keep_alive_ms = 1000"), "{text}");
    crate::config::ServerConfig::parse(&text, "bench.toml".as_ref(), "/".as_ref())
        .expect("the bench's config is valid");
}

#[test]
fn the_bench_commands_and_their_defaults() {
    let bench = |line: &str| {
        let argv = ["canopy", "bench"]
            .into_iter()
            .chain(line.split_whitespace());
        match Cli::try_parse_from(argv).map(|cli| cli.command) {
            Ok(Command::Bench(cmd)) => Ok(cmd),
            Ok(other) => panic!("not a bench command: {other:?}"),
            Err(e) => Err(e),
        }
    };
    let BenchCommand::Fanout {
        devices,
        secondaries,
        per_secondary,
        runs,
        poll_ms,
        in_process,
        json,
    } = bench("fanout").unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (devices, secondaries, per_secondary, runs, poll_ms),
        (10_000, 2, 2, 3, 5)
    );
    assert!(!in_process && !json);
    let BenchCommand::Change {
        secondaries, runs, ..
    } = bench("change --secondaries 7 --runs 1").unwrap()
    else {
        panic!()
    };
    assert_eq!((secondaries, runs), (7, 1));
    let BenchCommand::Connect {
        devices,
        keep_alive_s,
        json,
        ..
    } = bench("connect --json").unwrap()
    else {
        panic!()
    };
    assert!(devices == 10_000 && keep_alive_s == 5 && json);
    let BenchCommand::Connect { keep_alive_s, .. } =
        bench("connect --devices 100000 --keep-alive-s 25").unwrap()
    else {
        panic!()
    };
    assert_eq!(keep_alive_s, 25);
    assert!(matches!(
        bench("ingest --devices 5").unwrap(),
        BenchCommand::Ingest {
            devices: 5,
            runs: 3,
            json: false
        }
    ));
    for bad in [
        "",
        "connect --devices many",
        "connect --keep-alive-s 0",
        "teleport",
    ] {
        assert!(bench(bad).is_err(), "{bad:?}");
    }
}
