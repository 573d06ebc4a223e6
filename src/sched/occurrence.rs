//! The next and the latest occurrence of a schedule around an instant.
//!
//! Both searches start from the zone's clock at the instant, not from the schedule's start.
//! Resolution is monotone and the clock's own reading resolves to the instant or, in a fold,
//! earlier, so every key up to the clock resolves at or before the instant. Only keys in a
//! fold after the clock can resolve at or before it too, so a search steps over a few keys.

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

use super::Occurrence;
use super::keys::{Keys, MINUTE};
use super::resolve::{Clock, clock, key_of, resolve};
use crate::model::UnixMillis;
use crate::model::schedule::{LocalDateTime, Schedule};

/// The most keys a search steps over. A key more than three days of civil time after the
/// clock at an instant resolves after it (offsets are under 26 hours), and the keys that share
/// an instant lie in one gap (at most a day), so even with a key every minute a search ends
/// well within this.
const MAX_STEPS: usize = 4 * 24 * 60;

/// The first occurrence whose instant is strictly after `after`.
pub fn next_after(
    schedule: &Schedule,
    cancel_from: Option<LocalDateTime>,
    zone: &TimeZone,
    after: UnixMillis,
) -> Option<Occurrence> {
    let keys = Keys::new(schedule, cancel_from)?;
    let mut from = match clock(after, zone) {
        Clock::Before => DateTime::MIN,
        Clock::At(now) => now.checked_add(MINUTE).ok()?,
        Clock::After => return None,
    };
    for _ in 0..MAX_STEPS {
        let key = keys.first_from(from)?;
        match resolve(key, zone) {
            // The keys before this one resolve at or before `after`, so it is the earliest
            // key of its instant.
            Some(at) if at > after => {
                return Some(Occurrence {
                    key: key_of(key),
                    at,
                });
            }
            Some(_) => {}
            // Past the end of jiff's range, and so is every later key.
            None if key.year() > 0 => return None,
            // Before the start of jiff's range: a later key may resolve.
            None => {}
        }
        from = key.checked_add(MINUTE).ok()?;
    }
    None
}

/// The last occurrence whose instant is at or before `at`, keyed by the earliest key of its
/// instant. A device back after missing several occurrences runs this one, once.
pub fn latest_at_or_before(
    schedule: &Schedule,
    cancel_from: Option<LocalDateTime>,
    zone: &TimeZone,
    at: UnixMillis,
) -> Option<Occurrence> {
    let keys = Keys::new(schedule, cancel_from)?;
    // Every instant jiff can hold is at or before a later `at`. Its milliseconds end at
    // `Timestamp::MAX`'s whole second.
    let at = at.min(Timestamp::MAX.as_second().saturating_mul(1000));
    let now = match clock(at, zone) {
        Clock::At(now) => now,
        Clock::Before | Clock::After => return None,
    };
    // A key up to the clock that does not resolve is before jiff's range, as are those
    // before it.
    let mut last = keys
        .last_until(now)
        .and_then(|key| Some((key, resolve(key, zone)?)));
    let mut from = now.checked_add(MINUTE).ok();
    for _ in 0..MAX_STEPS {
        let Some(key) = from.and_then(|from| keys.first_from(from)) else {
            break;
        };
        match resolve(key, zone) {
            Some(instant) if instant <= at => last = Some((key, instant)),
            Some(_) => break,
            None if key.year() > 0 => break,
            None => {}
        }
        from = key.checked_add(MINUTE).ok();
    }
    let (mut key, instant) = last?;
    // Earlier keys that resolve to the same instant (in a gap) are the same occurrence.
    for _ in 0..MAX_STEPS {
        let Some(previous) = key
            .checked_sub(MINUTE)
            .ok()
            .and_then(|until| keys.last_until(until))
        else {
            break;
        };
        if resolve(previous, zone) != Some(instant) {
            break;
        }
        key = previous;
    }
    Some(Occurrence {
        key: key_of(key),
        at: instant,
    })
}
