//! What every scenario reports besides its own figures: the machine, and each figure as its
//! min, median and max over the runs, printed one line per figure.

use serde::Serialize;

#[derive(Serialize)]
pub(super) struct Machine {
    pub(super) cores: usize,
    pub(super) memory_gib: f64,
}

pub(super) fn machine() -> Machine {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    Machine {
        cores,
        memory_gib: memory_gib(&meminfo),
    }
}

/// The `MemTotal` of /proc/meminfo in GiB, to one decimal; 0 if it is not there.
pub(super) fn memory_gib(meminfo: &str) -> f64 {
    let kib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0);
    (kib / 1024.0 / 1024.0 * 10.0).round() / 10.0
}

/// Min, median and max of one figure over the runs.
#[derive(Serialize, Clone, Copy, Debug)]
pub(super) struct Spread {
    pub(super) min: f64,
    pub(super) median: f64,
    pub(super) max: f64,
}

/// The spread of `values`, whatever their order: the median of an even number of values is
/// the upper of the two middle ones; every figure of no values is NaN.
pub(super) fn spread(values: &[f64]) -> Spread {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let at = |i: usize| v.get(i).copied().unwrap_or(f64::NAN);
    Spread {
        min: at(0),
        median: at(v.len() / 2),
        max: at(v.len().saturating_sub(1)),
    }
}

/// One line per figure of a summary: its min, median and max.
pub(super) fn print_figures(summary: &serde_json::Value, figures: &[(&str, &str, &str)]) {
    print!("{}", figures_text(summary, figures));
}

/// The lines [`print_figures`] prints: each figure's `(name, key in the summary, unit)`; a
/// figure missing from the summary shows NaN.
pub(super) fn figures_text(summary: &serde_json::Value, figures: &[(&str, &str, &str)]) -> String {
    let mut out = String::new();
    for (name, key, unit) in figures {
        let s = &summary[key];
        out.push_str(&format!(
            "{name:<26} min {:>10.2}  median {:>10.2}  max {:>10.2} {unit}\n",
            s["min"].as_f64().unwrap_or(f64::NAN),
            s["median"].as_f64().unwrap_or(f64::NAN),
            s["max"].as_f64().unwrap_or(f64::NAN)
        ));
    }
    out
}
