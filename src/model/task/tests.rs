use super::*;

fn outcome(state: DeviceState) -> DeviceProgress {
    DeviceProgress::Finished {
        started: 1,
        finished: 2,
        outcome: Outcome {
            state,
            description: String::new(),
            progress: 100,
            need_restart: true,
            details: Details::None,
        },
    }
}

#[test]
fn a_device_record_only_moves_forward_and_counts_once() {
    let mut record = DeviceRunRecord::pending("d".into(), "dev".into());
    let mut counters = RunCounters::default();
    counters.add(&record);
    let steps = [
        DeviceProgress::Delivered,
        DeviceProgress::Delivered,
        DeviceProgress::Started { at: 1 },
        outcome(DeviceState::Warning),
        outcome(DeviceState::Succeeded),
        DeviceProgress::Started { at: 3 },
    ];
    let applied: Vec<bool> = steps
        .iter()
        .map(|step| {
            let old = record.clone();
            let changed = record.advance(step);
            if changed {
                counters.replace(&old, &record);
            }
            changed
        })
        .collect();
    assert_eq!(applied, [true, false, true, true, false, false]);
    assert_eq!((record.state, record.tries), (DeviceState::Warning, 1));
    assert_eq!(counters, RunCounters::of([&record]));
    assert_eq!(counters.need_restart, 1);
    assert_eq!(counters.completion_percent(), 100.0);
}

#[test]
fn a_result_without_a_start_counts_one_try() {
    let mut record = DeviceRunRecord::pending("d".into(), "dev".into());
    assert!(record.advance(&outcome(DeviceState::Failed)));
    assert_eq!((record.state, record.tries), (DeviceState::Failed, 1));
}

#[test]
fn the_administrators_change_to_a_local_task_wins() {
    let mut task = TaskRecord {
        id: 1,
        name: "local".into(),
        task_type: TaskType::Device(TaskPayload::Inventory),
        application: AGENT_APPLICATION.into(),
        scope: Scope::Local {
            device_id: "d".into(),
        },
        settings: TaskSettings::default(),
        created: 0,
        modified: 0,
        revision: 3,
        changed_by: ChangedBy::Administrator("admin".into()),
        last_run: None,
        inherited: None,
    };
    assert_eq!(task.device_edit(3), DeviceEdit::Apply);
    assert_eq!(task.device_edit(2), DeviceEdit::AdministratorWins);
    task.changed_by = ChangedBy::DeviceUser;
    assert_eq!(
        task.device_edit(2),
        DeviceEdit::Apply,
        "the user's own later change"
    );
    assert!(task.check().is_ok());
    task.scope = Scope::Server;
    assert!(task.check().unwrap_err().contains("runs on devices"));
}

#[test]
fn progress_and_pause_move_a_running_device_and_the_completion_follows() {
    let mut record = DeviceRunRecord::pending("d".into(), "dev".into());
    let mut counters =
        RunCounters::of([&record, &DeviceRunRecord::pending("e".into(), "e".into())]);
    let mut apply = |record: &mut DeviceRunRecord, progress: DeviceProgress| {
        let old = record.clone();
        let moved = record.advance(&progress);
        if moved {
            counters.replace(&old, record);
        }
        (moved, counters)
    };
    let progress = |percent, paused| DeviceProgress::Progress { percent, paused };
    // Progress before the start says nothing: the result will.
    assert!(!apply(&mut record, progress(10, false)).0);
    apply(&mut record, DeviceProgress::Started { at: 1 });
    let (moved, c) = apply(&mut record, progress(40, false));
    assert!(moved);
    assert_eq!((c.progress, c.completion_percent()), (40, 20.0));
    let (moved, c) = apply(&mut record, progress(50, true));
    assert!(moved);
    assert_eq!(record.state, DeviceState::Paused);
    assert_eq!(
        (c.count(DeviceState::Paused), c.count(DeviceState::Running)),
        (1, 0)
    );
    assert!(
        !apply(&mut record, progress(50, true)).0,
        "the same report twice"
    );
    // A start seen again (a resent order) neither moves nor counts a try.
    assert!(!apply(&mut record, DeviceProgress::Started { at: 2 }).0);
    let (_, c) = apply(&mut record, progress(100, false));
    assert_eq!((record.state, record.progress), (DeviceState::Running, 99));
    assert_eq!(c.progress, 99);
    let (_, c) = apply(&mut record, outcome(DeviceState::Succeeded));
    assert_eq!((c.progress, c.completion_percent()), (0, 50.0));
    assert_eq!(record.tries, 1);
    assert!(
        !apply(&mut record, progress(20, true)).0,
        "nothing after the end"
    );
}
