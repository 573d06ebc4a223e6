//! Spreading the starts of one occurrence over a window, so that many devices do not start at
//! once.

use ring::digest;

use crate::model::schedule::{LocalDateTime, RandomDelay};

/// The randomized delay of one device's start of one occurrence, uniform over
/// `[0, window_ms)`; 0 when `window_ms` is 0.
///
/// It is a hash of the device, the task and the occurrence's key, so a restart does not move
/// it and every occurrence draws again.
pub fn random_delay_ms(window_ms: u64, device_id: &str, task_id: u64, key: LocalDateTime) -> u64 {
    let mut input = Vec::with_capacity(64 + device_id.len());
    // A tag, then each value with a fixed width or its length first, so no two inputs
    // encode alike.
    input.extend_from_slice(b"canopy sched random delay v1\0");
    input.extend_from_slice(&(device_id.len() as u64).to_be_bytes());
    input.extend_from_slice(device_id.as_bytes());
    input.extend_from_slice(&task_id.to_be_bytes());
    input.extend_from_slice(&key.year.to_be_bytes());
    input.extend_from_slice(&[key.month, key.day, key.time.hour, key.time.minute]);
    let hash = digest::digest(&digest::SHA256, &input);
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_ref()[..8]);
    let x = u64::from_be_bytes(first);
    // The high half of x × window is below window and maps equal shares of x to each value.
    ((u128::from(x) * u128::from(window_ms)) >> 64) as u64
}

/// The window of `delay` for a task that reaches `devices` devices, in seconds (0: none).
pub fn window_secs(delay: RandomDelay, devices: u64) -> u32 {
    match delay {
        RandomDelay::Off => 0,
        RandomDelay::Within { seconds } => seconds,
        RandomDelay::Automatic => automatic_window_secs(devices),
    }
}

/// "Automatic randomization": the window the server chooses from the number of devices a
/// task targets, in seconds. None for 100 devices or fewer; otherwise about ten starts a
/// second (devices / 10 seconds), rounded up to whole minutes, and at most two hours.
pub fn automatic_window_secs(devices: u64) -> u32 {
    const MAX_SECS: u64 = 2 * 60 * 60;
    if devices <= 100 {
        return 0;
    }
    let secs = devices
        .div_ceil(10)
        .div_ceil(60)
        .saturating_mul(60)
        .min(MAX_SECS);
    // At most MAX_SECS, which fits.
    u32::try_from(secs).unwrap_or(u32::MAX)
}
