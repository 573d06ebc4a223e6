use std::time::{Duration, Instant};

use super::{HOLD, Outbox};
use crate::model::RunRef;
use crate::model::task::Outcome;
use crate::wire::msg::{AgentToServer, RunResult};

const RUN: RunRef = RunRef::Ordered(7);
const OTHER: RunRef = RunRef::Ordered(8);

fn received(run: RunRef) -> AgentToServer {
    AgentToServer::Received { run }
}

fn started(run: RunRef) -> AgentToServer {
    AgentToServer::Started { run, at: 1000 }
}

fn result(run: RunRef) -> AgentToServer {
    AgentToServer::Result(RunResult {
        run,
        started: 1000,
        finished: 1001,
        outcome: Outcome::failed("x"),
    })
}

fn progress(run: RunRef) -> AgentToServer {
    AgentToServer::Progress {
        run,
        percent: 50,
        paused: false,
    }
}

#[test]
fn a_run_that_ends_at_once_sends_only_its_result() {
    let t0 = Instant::now();
    let mut out = Outbox::default();
    assert!(out.handle(received(RUN), t0).is_empty());
    assert!(
        out.handle(started(RUN), t0 + Duration::from_millis(2))
            .is_empty()
    );
    assert_eq!(
        out.handle(result(RUN), t0 + Duration::from_millis(5)),
        [result(RUN)]
    );
    assert_eq!(out.poll_timeout(), None);
    assert!(out.poll_expired(t0 + HOLD * 10).is_empty());
}

#[test]
fn a_notice_goes_when_nothing_replaced_it_in_time_and_never_later_than_the_first_was_due() {
    let t0 = Instant::now();
    let mut out = Outbox::default();
    out.handle(received(RUN), t0);
    out.handle(started(RUN), t0 + HOLD / 2);
    // The start replaced the delivery but keeps its time.
    assert_eq!(out.poll_timeout(), Some(t0 + HOLD));
    assert!(out.poll_expired(t0 + HOLD / 2).is_empty());
    assert_eq!(out.poll_expired(t0 + HOLD), [started(RUN)]);
    assert_eq!(out.poll_timeout(), None);
    // The result later goes alone.
    assert_eq!(out.handle(result(RUN), t0 + HOLD * 3), [result(RUN)]);
}

#[test]
fn progress_follows_the_start_notice_it_comes_after() {
    let t0 = Instant::now();
    let mut out = Outbox::default();
    out.handle(started(RUN), t0);
    assert_eq!(out.handle(progress(RUN), t0), [started(RUN), progress(RUN)]);
    assert_eq!(out.poll_timeout(), None);
}

#[test]
fn other_runs_and_other_messages_are_not_held_back() {
    let t0 = Instant::now();
    let mut out = Outbox::default();
    out.handle(received(RUN), t0);
    assert_eq!(out.handle(result(OTHER), t0), [result(OTHER)]);
    let edit = AgentToServer::LocalTaskEdit {
        task_id: 1,
        base_revision: 1,
        schedule: Default::default(),
    };
    assert_eq!(out.handle(edit.clone(), t0), [edit]);
    out.handle(received(OTHER), t0 + Duration::from_millis(1));
    // Each goes at its own time, oldest first.
    assert_eq!(out.poll_expired(t0 + HOLD), [received(RUN)]);
    assert_eq!(
        out.poll_expired(t0 + HOLD + Duration::from_millis(1)),
        [received(OTHER)]
    );
}

#[test]
fn a_delivery_acknowledged_again_does_not_undo_a_start() {
    let t0 = Instant::now();
    let mut out = Outbox::default();
    out.handle(started(RUN), t0);
    assert!(out.handle(received(RUN), t0).is_empty());
    assert_eq!(out.poll_expired(t0 + HOLD), [started(RUN)]);
}
