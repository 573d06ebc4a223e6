//! Civil date-times and instants: a key resolved in a zone with the gap and fold rules, an
//! instant read on a zone's clock, zones by name and instants for people.

use jiff::civil::{DateTime, Time};
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};

use crate::model::UnixMillis;
use crate::model::schedule::{LocalDateTime, TimeOfDay};

/// A key resolved in a zone: the end of the gap for a time that does not exist, the earlier
/// instant for a time that occurs twice; None if out of range.
pub fn instant_of(key: LocalDateTime, zone: &TimeZone) -> Option<UnixMillis> {
    resolve(civil(key)?, zone)
}

/// The day of `at` on `zone`'s clock, as the key of that day at 00:00; None if out of range.
pub fn day_of(at: UnixMillis, zone: &TimeZone) -> Option<LocalDateTime> {
    let date = Timestamp::from_millisecond(at)
        .ok()?
        .to_zoned(zone.clone())
        .date();
    Some(LocalDateTime {
        year: date.year(),
        month: u8::try_from(date.month()).ok()?,
        day: u8::try_from(date.day()).ok()?,
        time: TimeOfDay { hour: 0, minute: 0 },
    })
}

/// A time zone by IANA name ("Europe/Berlin") or "UTC", from jiff's database.
pub fn zone_named(name: &str) -> Result<TimeZone, String> {
    let unknown =
        || format!("unknown time zone {name:?}; give an IANA name such as Europe/Berlin, or UTC");
    // IANA names are made of these characters; anything else is refused before any lookup.
    let plausible = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-+".contains(&b));
    // jiff answers "Etc/Unknown" with its placeholder zone, which is no place's clock.
    if !plausible || name.eq_ignore_ascii_case("Etc/Unknown") {
        return Err(unknown());
    }
    TimeZone::get(name).map_err(|_| unknown())
}

/// The local date-time and zone abbreviation of an instant, for people: "2026-12-04 19:00 CET".
pub fn local_text(at: UnixMillis, zone: &TimeZone) -> String {
    match Timestamp::from_millisecond(at) {
        Ok(ts) => ts
            .to_zoned(zone.clone())
            .strftime("%Y-%m-%d %H:%M %Z")
            .to_string(),
        Err(_) => format!("{at} ms"),
    }
}

/// A `LocalDateTime` as a jiff civil date-time; None if it is no real date and time.
pub(super) fn civil(at: LocalDateTime) -> Option<DateTime> {
    let date = jiff::civil::Date::new(
        at.year,
        i8::try_from(at.month).ok()?,
        i8::try_from(at.day).ok()?,
    )
    .ok()?;
    Some(date.to_datetime(time_of_day(at.time)?))
}

/// A `TimeOfDay` as a jiff time; None for an hour or minute out of range.
pub(super) fn time_of_day(at: TimeOfDay) -> Option<Time> {
    Time::new(
        i8::try_from(at.hour).ok()?,
        i8::try_from(at.minute).ok()?,
        0,
        0,
    )
    .ok()
}

/// A key (a civil date-time to the minute) as the model's `LocalDateTime`.
pub(super) fn key_of(dt: DateTime) -> LocalDateTime {
    // jiff's months, days, hours and minutes are never negative.
    LocalDateTime {
        year: dt.year(),
        month: dt.month().unsigned_abs(),
        day: dt.day().unsigned_abs(),
        time: TimeOfDay {
            hour: dt.hour().unsigned_abs(),
            minute: dt.minute().unsigned_abs(),
        },
    }
}

/// A civil date-time resolved in a zone, in milliseconds; None if out of jiff's range.
pub(super) fn resolve(dt: DateTime, zone: &TimeZone) -> Option<UnixMillis> {
    let ts = match zone.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt).ok()?,
        // The offset before a fold is the larger one, so it gives the earlier instant.
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(dt).ok()?,
        AmbiguousOffset::Gap { before, after } => gap_end(dt, before, after, zone)?,
    };
    Some(ts.as_millisecond())
}

/// The instant the clocks jump over a gap that `dt` falls in.
///
/// The gap's civil times run from the transition on the old offset to the transition on the
/// new one, so the transition lies after `dt` read on the new offset and at or before `dt`
/// read on the old one: it is the last transition up to the latter.
fn gap_end(dt: DateTime, before: Offset, after: Offset, zone: &TimeZone) -> Option<Timestamp> {
    let late = before.to_timestamp(dt).ok()?;
    let early = after.to_timestamp(dt).ok();
    // `preceding` yields transitions strictly before its argument.
    let probe = late.checked_add(SignedDuration::from_nanos(1)).ok()?;
    let transition = zone.preceding(probe).next().map(|t| t.timestamp());
    match transition {
        Some(t) if early.is_none_or(|early| t > early) => Some(t),
        // Not expected with any zone jiff knows; the old offset's reading is past the gap.
        _ => Some(late),
    }
}

/// Where an instant falls on a zone's clock, for searching keys around it.
pub(super) enum Clock {
    /// Before jiff's range: every resolvable key is later.
    Before,
    /// The civil date-time on the zone's clock, cut to the minute.
    At(DateTime),
    /// After jiff's range: every resolvable key is earlier.
    After,
}

/// The zone's clock at `at`, cut to the minute.
pub(super) fn clock(at: UnixMillis, zone: &TimeZone) -> Clock {
    match Timestamp::from_millisecond(at) {
        Ok(ts) => {
            let dt = zone.to_datetime(ts);
            match Time::new(dt.hour(), dt.minute(), 0, 0) {
                Ok(time) => Clock::At(dt.date().to_datetime(time)),
                // Unreachable: the hour and minute come from a valid time.
                Err(_) => Clock::At(dt),
            }
        }
        Err(_) if at < 0 => Clock::Before,
        Err(_) => Clock::After,
    }
}
