//! The randomized start delay and the automatic window.

use super::*;

#[test]
fn the_delay_is_deterministic_and_within_the_window() {
    let key = ldt(2026, 12, 4, 19, 0);
    let delay = random_delay_ms(600_000, "device-1", 7, key);
    assert_eq!(delay, random_delay_ms(600_000, "device-1", 7, key));
    assert!(delay < 600_000);
    for window in [1, 2, 1000, 600_000, u64::MAX] {
        for i in 0..200 {
            let delay = random_delay_ms(window, &format!("device-{i}"), i, key);
            assert!(delay < window, "{delay} for a window of {window}");
        }
    }
    assert_eq!(random_delay_ms(1, "device-1", 7, key), 0);
    for i in 0..100 {
        assert_eq!(random_delay_ms(0, &format!("device-{i}"), i, key), 0);
    }
}

#[test]
fn every_value_moves_the_delay() {
    let key = ldt(2026, 12, 4, 19, 0);
    let base = random_delay_ms(600_000, "device-1", 7, key);
    assert_ne!(base, random_delay_ms(600_000, "device-2", 7, key));
    assert_ne!(base, random_delay_ms(600_000, "device-1", 8, key));
    assert_ne!(
        base,
        random_delay_ms(600_000, "device-1", 7, ldt(2026, 12, 4, 19, 1))
    );
    // The device id's length is encoded, so an id cannot borrow bytes from the task id.
    assert_ne!(
        random_delay_ms(u64::MAX, "a", 0, key),
        random_delay_ms(u64::MAX, "a\0", 0, key)
    );
    // One device's occurrences draw different delays.
    let delays: std::collections::BTreeSet<u64> = (1..=28)
        .map(|day| random_delay_ms(600_000, "device-1", 7, ldt(2027, 2, day, 9, 0)))
        .collect();
    assert!(delays.len() > 20, "{delays:?}");
}

#[test]
fn the_delay_is_uniform() {
    const BUCKETS: usize = 20;
    const DEVICES: usize = 10_000;
    const WINDOW: u64 = 600_000;
    let key = ldt(2026, 12, 4, 19, 0);
    let mut counts = [0u32; BUCKETS];
    for i in 0..DEVICES {
        let delay = random_delay_ms(WINDOW, &format!("device-{i:05}"), 42, key);
        counts[(delay * BUCKETS as u64 / WINDOW) as usize] += 1;
    }
    let expected = DEVICES as f64 / BUCKETS as f64;
    let chi_square: f64 = counts
        .iter()
        .map(|&n| (f64::from(n) - expected).powi(2) / expected)
        .sum();
    // The critical value for 19 degrees of freedom at p = 0.001.
    assert!(
        chi_square < 43.82,
        "chi-square {chi_square} over {counts:?}"
    );
}

#[test]
fn the_automatic_window_grows_with_the_devices() {
    assert_eq!(automatic_window_secs(0), 0);
    assert_eq!(automatic_window_secs(100), 0);
    // 11 seconds, rounded up to a minute.
    assert_eq!(automatic_window_secs(101), 60);
    assert_eq!(automatic_window_secs(1000), 120);
    // 1000 seconds.
    assert_eq!(automatic_window_secs(10_000), 1020);
    // 10,000 seconds, cut to two hours.
    assert_eq!(automatic_window_secs(100_000), 7200);
    assert_eq!(automatic_window_secs(u64::MAX), 7200);
}
