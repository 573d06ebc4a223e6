use super::*;
use crate::model::schedule::Schedule;
use crate::model::scope::Scope;
use crate::model::task::{ChangedBy, SealedSecret, TaskPayload, TaskSettings};

fn task() -> TaskRecord {
    TaskRecord {
        id: 3,
        name: "Scan".into(),
        task_type: TaskType::Device(TaskPayload::Scan {
            paths: vec!["/home".into()],
            blocklist: Vec::new(),
        }),
        application: "Canopy agent".into(),
        scope: Scope::Local {
            device_id: "d1".into(),
        },
        settings: TaskSettings::default(),
        created: 0,
        modified: 0,
        revision: 1,
        changed_by: ChangedBy::Administrator("admin".into()),
        last_run: None,
        inherited: None,
    }
}

fn scope(t: &TaskRecord) -> String {
    format!("{:?}", t.scope)
}

#[test]
fn a_diff_names_each_setting_that_changed_and_never_a_password() {
    assert!(diff(&task(), &task(), &scope).is_empty());
    let mut after = task();
    after.name = "Scan all".into();
    after.settings.schedule = Schedule::parse("weekly:fri@19:00").unwrap();
    after.task_type = TaskType::Device(TaskPayload::Scan {
        paths: vec!["/home".into(), "/srv".into()],
        blocklist: Vec::new(),
    });
    let changes = diff(&task(), &after, &scope);
    let names: Vec<&str> = changes.iter().map(|c| c.setting.as_str()).collect();
    assert_eq!(names, ["name", "paths", "schedule"], "{changes:#?}");
    assert_eq!(changes[1].before, r#"["/home"]"#);
    assert_eq!(changes[1].after, r#"["/home","/srv"]"#);

    // Another sealed password: "changed", and no byte of either.
    let sealed = |b: u8| TaskAccount::Specified {
        name: "svc".into(),
        password: Some(SealedSecret {
            nonce: [b; 12],
            ciphertext: vec![b; 24],
        }),
    };
    let (mut one, mut two) = (task(), task());
    one.settings.account = sealed(1);
    two.settings.account = sealed(2);
    let changes = diff(&one, &two, &scope);
    assert_eq!(changes.len(), 1, "{changes:#?}");
    assert_eq!(
        (changes[0].setting.as_str(), changes[0].after.as_str()),
        ("password", "changed")
    );
    assert!(check_comment(&"c".repeat(MAX_COMMENT_CHARS + 1)).is_err());
    assert!(check_comment("fixed the\npath").is_ok());
    assert!(check_comment("bell\u{7}").is_err());
}
