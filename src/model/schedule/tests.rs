use super::*;

fn dt(year: i16, month: u8, day: u8, hour: u8, minute: u8) -> LocalDateTime {
    LocalDateTime {
        year,
        month,
        day,
        time: TimeOfDay { hour, minute },
    }
}

fn t(hour: u8, minute: u8) -> TimeOfDay {
    TimeOfDay { hour, minute }
}

#[test]
fn date_times_parse_and_display() {
    assert_eq!(
        LocalDateTime::parse("2026-12-01T18:00"),
        Ok(dt(2026, 12, 1, 18, 0))
    );
    assert_eq!(
        LocalDateTime::parse(" 2026-12-01 08:05 "),
        Ok(dt(2026, 12, 1, 8, 5))
    );
    assert_eq!(
        LocalDateTime::parse("2028-02-29T23:59"),
        Ok(dt(2028, 2, 29, 23, 59))
    );
    assert_eq!(dt(2026, 3, 7, 9, 5).to_string(), "2026-03-07T09:05");
    let e = LocalDateTime::parse("2026-02-29T10:00").unwrap_err();
    assert_eq!(
        e,
        "\"2026-02-29T10:00\": there is no such date; February 2026 has 28 days"
    );
    let e = LocalDateTime::parse("2026-04-31T10:00").unwrap_err();
    assert!(e.contains("April 2026 has 30 days"), "{e}");
    assert!(
        LocalDateTime::parse("2026-13-01T10:00")
            .unwrap_err()
            .contains("no month 13")
    );
    assert!(
        LocalDateTime::parse("2026-12-01T24:00")
            .unwrap_err()
            .contains("00 to 23")
    );
    assert!(
        LocalDateTime::parse("2026-12-01T23:60")
            .unwrap_err()
            .contains("00 to 59")
    );
    for bad in [
        "",
        "2026-12-01",
        "2026-12-01T18",
        "2026-12-01T18:00:00",
        "26-12-01T18:00",
        "2026-12-00T18:00",
        "2026-12-01-02T18:00",
        "2026/12/01T18:00",
        "2026-+1-01T18:00",
        "2026-12-01T-1:00",
        "20261-12-01T18:00",
    ] {
        assert!(LocalDateTime::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn schedules_parse() {
    let cases = [
        ("manual", Schedule::Manually),
        (" MANUAL ", Schedule::Manually),
        ("Immediately", Schedule::Immediately),
        ("app-start", Schedule::AtApplicationStart),
        ("after:4", Schedule::AfterTask { task_id: 4 }),
        ("After: 17 ", Schedule::AfterTask { task_id: 17 }),
        (
            "once:2026-12-01T18:00",
            Schedule::Once {
                at: dt(2026, 12, 1, 18, 0),
            },
        ),
        (
            "every:15m@2026-12-01T08:00",
            Schedule::Every {
                every: 15,
                unit: PeriodUnit::Minutes,
                start: dt(2026, 12, 1, 8, 0),
            },
        ),
        (
            "EVERY:2H@2026-12-01 08:00",
            Schedule::Every {
                every: 2,
                unit: PeriodUnit::Hours,
                start: dt(2026, 12, 1, 8, 0),
            },
        ),
        (
            "every:1w@2027-01-04T00:00",
            Schedule::Every {
                every: 1,
                unit: PeriodUnit::Weeks,
                start: dt(2027, 1, 4, 0, 0),
            },
        ),
        (
            "weekly:fri,Monday,FRI@18:00",
            Schedule::ByDaysOfWeek {
                days: vec![Weekday::Monday, Weekday::Friday],
                at: t(18, 0),
            },
        ),
        (
            "monthly:31@09:00",
            Schedule::Monthly {
                day: 31,
                at: t(9, 0),
            },
        ),
        (
            "monthday:Last-tuesday@7:30",
            Schedule::MonthDays {
                week: WeekOfMonth::Last,
                weekday: Weekday::Tuesday,
                at: t(7, 30),
            },
        ),
    ];
    for (spec, expected) in cases {
        assert_eq!(Schedule::parse(spec), Ok(expected), "{spec}");
    }
}

#[test]
fn bad_schedules_say_why() {
    let err = |spec: &str| Schedule::parse(spec).unwrap_err();
    let e = err("sometimes");
    assert!(
        e.starts_with("\"sometimes\": not a schedule; use one of manual, immediately"),
        "{e}"
    );
    assert!(e.contains("monthday:(first|second|third|fourth|last)-WEEKDAY@HH:MM"));
    assert!(err("daily:09:00").contains("not a schedule"));
    assert!(err("once").contains("needs more"));
    assert!(err("after:").contains("task id"));
    assert!(err("after:x").contains("task id"));
    assert!(err("after:-1").contains("task id"));
    assert!(err("after:99999999999999999999").contains("task id"));
    assert!(err("once:2026-02-30T10:00").contains("February 2026 has 28 days"));
    assert!(err("every:15m").contains("first start after '@'"));
    assert!(err("every:0m@2026-12-01T08:00").contains("at least 1"));
    assert!(err("every:15@2026-12-01T08:00").contains("number and a unit"));
    assert!(err("every:15s@2026-12-01T08:00").contains("number and a unit"));
    assert!(err("every:m@2026-12-01T08:00").contains("number and a unit"));
    assert!(err("every:@2026-12-01T08:00").contains("number and a unit"));
    assert!(err("every:9999999999m@2026-12-01T08:00").contains("number and a unit"));
    assert!(err("every:5m@tomorrow").contains("YYYY-MM-DDTHH:MM"));
    assert!(err("weekly:mon").contains("after '@'"));
    assert!(err("weekly:@18:00").contains("not a weekday"));
    assert!(err("weekly:mon,,fri@18:00").contains("not a weekday"));
    assert!(err("weekly:mo@18:00").contains("\"mo\" is not a weekday"));
    assert!(err("weekly:mon@25:00").contains("00 to 23"));
    assert!(err("weekly:mon@6pm").contains("HH:MM"));
    assert!(err("monthly:0@09:00").contains("1 to 31"));
    assert!(err("monthly:32@09:00").contains("1 to 31"));
    assert!(err("monthly:last@09:00").contains("1 to 31"));
    assert!(err("monthday:fifth-mon@09:00").contains("first, second"));
    assert!(err("monthday:first@09:00").contains("first, second"));
    assert!(err("monthday:first-someday@09:00").contains("first, second"));
}

#[test]
fn schedules_read_as_text() {
    let text = |spec: &str| Schedule::parse(spec).unwrap().to_string();
    assert_eq!(text("manual"), "manually");
    assert_eq!(text("once:2026-12-01T18:00"), "once at 2026-12-01 18:00");
    assert_eq!(
        text("every:15m@2026-12-01T08:00"),
        "every 15 minutes from 2026-12-01 08:00"
    );
    assert_eq!(
        text("every:1d@2026-12-01T08:00"),
        "every day from 2026-12-01 08:00"
    );
    assert_eq!(
        text("weekly:fri,mon@18:00"),
        "every Monday, Friday at 18:00"
    );
    assert_eq!(
        text("monthly:31@09:00"),
        "monthly on day 31 at 09:00 (the last day in shorter months)"
    );
    assert_eq!(text("monthly:5@09:00"), "monthly on day 5 at 09:00");
    assert_eq!(
        text("monthday:first-mon@09:00"),
        "on the first Monday of each month at 09:00"
    );
    assert_eq!(
        text("app-start"),
        "at application start (the agent's first start each day)"
    );
    assert_eq!(text("after:4"), "after task #4 completes");
    assert_eq!(text("immediately"), "immediately on creation");
    let empty = Schedule::ByDaysOfWeek {
        days: Vec::new(),
        at: t(9, 0),
    };
    assert!(empty.to_string().contains("never runs"));
}

#[test]
fn specs_round_trip() {
    let specs = [
        "manual",
        "immediately",
        "app-start",
        "after:0",
        "after:18446744073709551615",
        "once:2026-12-01T18:00",
        "once:0001-01-01T00:00",
        "once:9999-12-31T23:59",
        "every:1m@2026-12-01T08:00",
        "every:999999999h@2026-12-01T08:00",
        "every:3d@2028-02-29T12:30",
        "every:2w@2027-01-04T00:00",
        "weekly:mon@18:00",
        "weekly:sun,sat,fri,thu,wed,tue,mon@00:00",
        "weekly:Wednesday@7:05",
        "monthly:1@00:00",
        "monthly:29@23:59",
        "monthday:first-mon@09:00",
        "monthday:second-tue@09:00",
        "monthday:third-wed@09:00",
        "monthday:fourth-thu@09:00",
        "monthday:last-sunday@09:00",
    ];
    for spec in specs {
        let schedule = Schedule::parse(spec).unwrap();
        let again = schedule.spec();
        assert_eq!(
            Schedule::parse(&again),
            Ok(schedule.clone()),
            "{spec} -> {again}"
        );
        assert_eq!(Schedule::parse(&again).unwrap().spec(), again);
    }
    assert_eq!(
        Schedule::parse("WEEKLY:Friday,MON@7:05").unwrap().spec(),
        "weekly:mon,fri@07:05"
    );
    assert_eq!(
        Schedule::parse("every:15M@2026-12-01 08:00")
            .unwrap()
            .spec(),
        "every:15m@2026-12-01T08:00"
    );
    assert_eq!(Schedule::default().spec(), "manual");
}

#[test]
fn options_read_as_text() {
    assert_eq!(
        ScheduleOptions::default().to_string(),
        "run missed: no; random delay: off; time limit: none; cancel schedule: never"
    );
    let options = ScheduleOptions {
        run_missed: true,
        random_delay: RandomDelay::Within { seconds: 1800 },
        time_limit_secs: Some(5400),
        cancel_from: Some(dt(2027, 1, 1, 0, 0)),
    };
    assert_eq!(
        options.to_string(),
        "run missed: yes; random delay: within 30 minutes; time limit: 1 hour 30 minutes; \
         cancel schedule: from 2027-01-01 00:00"
    );
    let options = ScheduleOptions {
        random_delay: RandomDelay::Within { seconds: 60 },
        time_limit_secs: Some(7200),
        ..ScheduleOptions::default()
    };
    assert!(
        options
            .to_string()
            .contains("within 1 minute; time limit: 2 hours;")
    );
}

#[test]
fn durations_read_as_administrators_type_them() {
    let what = "the time limit";
    assert_eq!(parse_duration("90s", what), Ok(90));
    assert_eq!(parse_duration("15", what), Ok(900));
    assert_eq!(parse_duration("15m", what), Ok(900));
    assert_eq!(parse_duration("2H", what), Ok(7200));
    assert_eq!(parse_duration("1:30", what), Ok(5400));
    assert_eq!(parse_duration("168h", what), Ok(MAX_OPTION_SECS));
    for bad in ["", "m", "-5", "1.5h", "5d", "1:75", "1:", ":30", "5 m s"] {
        let e = parse_duration(bad, what).unwrap_err();
        assert!(e.starts_with("the time limit: "), "{bad:?}: {e}");
    }
    let e = parse_duration("169h", what).unwrap_err();
    assert!(e.contains("longer than the most allowed, 168 hours"), "{e}");
    assert_eq!(duration_text(3725), "1 hour 2 minutes 5 seconds");
    assert_eq!(duration_text(0), "0 seconds");

    assert_eq!(RandomDelay::parse("auto"), Ok(RandomDelay::Automatic));
    assert_eq!(RandomDelay::parse("0"), Ok(RandomDelay::Off));
    assert_eq!(RandomDelay::parse("OFF"), Ok(RandomDelay::Off));
    assert_eq!(
        RandomDelay::parse("10"),
        Ok(RandomDelay::Within { seconds: 600 })
    );
    assert_eq!(
        RandomDelay::Automatic.to_string(),
        "automatic (by the number of devices)"
    );
    assert_eq!(parse_time_limit("none"), Ok(None));
    assert_eq!(parse_time_limit("0"), Ok(None));
    assert_eq!(parse_time_limit("3s"), Ok(Some(3)));
}
