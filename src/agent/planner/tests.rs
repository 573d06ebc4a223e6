//! The planner's decisions for the spec's own example: a group scan "on Fridays at 7:00 PM",
//! on devices in Berlin that are shut down at 6:30 PM, with run missed off and on.

use super::*;
use crate::model::schedule::{LocalDateTime, Schedule, TimeOfDay};
use crate::model::task::TaskPayload;

fn zone() -> TimeZone {
    sched::zone_named("Europe/Berlin").unwrap()
}

/// Berlin wall time to an instant.
fn at(day: i8, hour: i8, minute: i8) -> UnixMillis {
    jiff::civil::date(2026, 12, day)
        .at(hour, minute, 0, 0)
        .to_zoned(zone())
        .unwrap()
        .timestamp()
        .as_millisecond()
}

fn friday(day: u8) -> LocalDateTime {
    LocalDateTime {
        year: 2026,
        month: 12,
        day,
        time: TimeOfDay {
            hour: 19,
            minute: 0,
        },
    }
}

fn held(run_missed: bool, window_secs: u32, handled: Option<LocalDateTime>) -> HeldSchedule {
    HeldSchedule {
        def: ScheduledTaskDef {
            task_id: 4,
            name: "Scan".into(),
            revision: 1,
            since: at(1, 9, 0),
            application: "Canopy agent".into(),
            payload: TaskPayload::Inventory,
            schedule: Schedule::parse("weekly:fri@19:00").unwrap(),
            run_missed,
            delay_window_secs: window_secs,
            time_limit_secs: None,
            cancel_from: None,
            account: Default::default(),
        },
        handled,
    }
}

const MISSED_AFTER: Duration = Duration::from_secs(60);

#[test]
fn a_device_on_at_seven_starts_on_time_and_then_waits_a_week() {
    let z = zone();
    let (decision, wake) = decide(&held(false, 0, None), "d1", &z, MISSED_AFTER, at(4, 19, 0));
    assert_eq!(
        decision,
        Decision::Start {
            key: friday(4),
            late: false
        }
    );
    assert_eq!(wake, Some(at(11, 19, 0)));
    let done = held(false, 0, Some(friday(4)));
    let (decision, wake) = decide(&done, "d1", &z, MISSED_AFTER, at(4, 19, 1));
    assert_eq!((decision, wake), (Decision::Wait, Some(at(11, 19, 0))));
    // Before seven it waits for seven.
    let (decision, wake) = decide(&held(false, 0, None), "d1", &z, MISSED_AFTER, at(4, 18, 0));
    assert_eq!((decision, wake), (Decision::Wait, Some(at(4, 19, 0))));
}

#[test]
fn a_device_shut_down_at_half_past_six_misses_the_scan_unless_run_missed_is_on() {
    let z = zone();
    // Off from Friday 18:30 to Monday 08:00.
    let monday = at(7, 8, 0);
    let (decision, _) = decide(&held(false, 0, None), "d1", &z, MISSED_AFTER, monday);
    assert_eq!(
        decision,
        Decision::Skip {
            key: friday(4),
            at: at(4, 19, 0)
        }
    );
    let (decision, _) = decide(&held(true, 0, None), "d1", &z, MISSED_AFTER, monday);
    assert_eq!(
        decision,
        Decision::Start {
            key: friday(4),
            late: true
        }
    );
    // Away for two Fridays: the latest runs, once.
    let (decision, _) = decide(&held(true, 0, None), "d1", &z, MISSED_AFTER, at(14, 8, 0));
    assert_eq!(
        decision,
        Decision::Start {
            key: friday(11),
            late: true
        }
    );
    // A few seconds late (the agent was busy) is not missed.
    let (decision, _) = decide(
        &held(false, 0, None),
        "d1",
        &z,
        MISSED_AFTER,
        at(4, 19, 0) + 30_000,
    );
    assert!(matches!(decision, Decision::Start { late: false, .. }));
}

#[test]
fn a_randomized_start_waits_for_the_devices_own_moment_within_the_window() {
    let z = zone();
    let window = 600;
    let starts: Vec<UnixMillis> = (0..200)
        .map(|i| {
            let device = format!("device-{i}");
            let (decision, wake) = decide(
                &held(false, window, None),
                &device,
                &z,
                MISSED_AFTER,
                at(4, 19, 0),
            );
            assert_eq!(decision, Decision::Wait, "{device}");
            wake.unwrap()
        })
        .collect();
    let seven = at(4, 19, 0);
    assert!(starts.iter().all(|s| (seven..seven + 600_000).contains(s)));
    let spread = starts.iter().max().unwrap() - starts.iter().min().unwrap();
    assert!(spread > 500_000, "spread over the window: {spread} ms");
    // Its moment come, the device starts.
    let mine = starts[7];
    let (decision, _) = decide(
        &held(false, window, None),
        "device-7",
        &z,
        MISSED_AFTER,
        mine,
    );
    assert!(matches!(decision, Decision::Start { late: false, .. }));
}

#[test]
fn an_occurrence_before_the_task_reached_the_device_is_not_its_to_miss() {
    let z = zone();
    let mut late_task = held(true, 0, None);
    late_task.def.since = at(4, 20, 0);
    let (decision, wake) = decide(&late_task, "d1", &z, MISSED_AFTER, at(5, 9, 0));
    assert_eq!((decision, wake), (Decision::Wait, Some(at(11, 19, 0))));
}
