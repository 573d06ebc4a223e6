use super::*;
use crate::model::schedule::RandomDelay;

fn sample() -> ExportedTask {
    ExportedTask {
        name: "Friday scan".into(),
        application: "Canopy agent".into(),
        schedule: "weekly:fri@19:00".into(),
        account: Some("svc-scan".into()),
        account_password_set: true,
        notify: Notify::All,
        keep_days: 30,
        exported_from: "primary".into(),
        exported_at: "2026-11-30 12:00 UTC".into(),
        restart: RestartPolicy::AskUser {
            repeat_minutes: 5,
            force_after_minutes: Some(60),
        },
        schedule_options: ScheduleOptions {
            run_missed: true,
            random_delay: RandomDelay::Automatic,
            time_limit_secs: Some(5400),
            cancel_from: None,
        },
        parameters: TaskPayload::Scan {
            paths: vec!["/home".into()],
            blocklist: vec!["ab".repeat(32)],
        },
    }
}

#[test]
fn an_export_reads_back_as_it_was_written_and_is_text() {
    let file = encode(&sample()).unwrap();
    assert!(file.starts_with("canopy-task-export 1\nsha256 "), "{file}");
    assert!(file.contains("name = \"Friday scan\""), "{file}");
    assert!(file.contains("schedule = \"weekly:fri@19:00\""), "{file}");
    assert_eq!(decode(file.as_bytes()).unwrap(), sample());
}

#[test]
fn damaged_or_foreign_files_are_refused_with_the_reason() {
    let file = encode(&sample()).unwrap();
    let truncated = &file.as_bytes()[..file.len() - 10];
    assert_eq!(decode(truncated), Err(ImportError::Checksum));
    let edited = file.replace("Friday", "Monday");
    assert_eq!(decode(edited.as_bytes()), Err(ImportError::Checksum));
    let newer = file.replacen("canopy-task-export 1", "canopy-task-export 2", 1);
    assert_eq!(
        decode(newer.as_bytes()),
        Err(ImportError::UnknownVersion("2".into()))
    );
    assert_eq!(decode(b"name = \"x\"\n"), Err(ImportError::NotAnExport));
    assert_eq!(decode(&[0xff, 0xfe]), Err(ImportError::NotAnExport));
    let huge = vec![b'a'; MAX_FILE_BYTES + 1];
    assert_eq!(
        decode(&huge),
        Err(ImportError::TooLarge(MAX_FILE_BYTES + 1))
    );
    // A well-formed file of a task type this build does not know.
    let body = toml::to_string(&sample())
        .unwrap()
        .replace("[parameters.Scan]", "[parameters.Defragment]");
    let foreign = with_header(&body);
    assert!(
        matches!(decode(foreign.as_bytes()), Err(ImportError::UnknownType(_))),
        "{:?}",
        decode(foreign.as_bytes())
    );
    // A name over 100 characters, and a schedule that does not parse.
    for (from, to) in [
        ("\"Friday scan\"", format!("\"{}\"", "n".repeat(101))),
        ("\"weekly:fri@19:00\"", "\"weekly:fri@25:00\"".to_string()),
    ] {
        let body = toml::to_string(&sample()).unwrap().replace(from, &to);
        let bad = with_header(&body);
        assert!(
            matches!(decode(bad.as_bytes()), Err(ImportError::Invalid(_))),
            "{:?}",
            decode(bad.as_bytes())
        );
    }
}

#[test]
fn a_deeply_nested_body_is_refused_without_overflowing_the_stack() {
    for open in ["[", "{a="] {
        let body = format!("name = {}", open.repeat(40_000));
        assert!(decode(with_header(&body).as_bytes()).is_err());
    }
}
