//! The seeded schedule of one chaos run: when which process is killed and for how long, and
//! which task is created, edited or started when; and the two drivers that carry it out
//! at the same time.

use std::time::Duration;

use canopy::model::task::{TaskPayload, TaskType};
use canopy::wire::msg::{AdminRequest, AdminResponse, TaskChanges, TaskRequest};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::tree::{Admin, Proc};

/// The group tasks of a run: (name, index in `tree::NODES` of the server that owns it).
/// Two at the primary, one at branch-1 (it reaches branch-1a and the virtual server).
pub const TASKS: [(&str, usize); 3] = [("chaos-1", 0), ("chaos-2", 0), ("chaos-m", 1)];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Index into `Tree::servers`.
    Server(usize),
    /// Index into `Tree::fleets`.
    Fleet(usize),
}

#[derive(Clone, Debug)]
pub struct Kill {
    pub at: Duration,
    pub target: Target,
    pub down: Duration,
}

#[derive(Clone, Debug)]
pub enum OpKind {
    /// Change the simulated work: the task's revision goes up.
    Edit(TaskType),
    Start,
}

#[derive(Clone, Debug)]
pub struct Op {
    pub at: Duration,
    pub task: usize,
    pub kind: OpKind,
}

pub struct Plan {
    pub kills: Vec<Kill>,
    pub ops: Vec<Op>,
}

fn simulate(rng: &mut StdRng) -> TaskType {
    TaskType::Device(TaskPayload::Simulate {
        duration_ms: rng.random_range(300..5000),
        succeeded: rng.random_range(50..100),
        warning: rng.random_range(0..20),
        failed: rng.random_range(0..20),
        need_restart_percent: rng.random_range(0..30),
    })
}

impl Plan {
    /// The schedule of seed `seed` over `chaos`: a kill every 1 to 3 s (a server 60 % of the
    /// time, else a fleet; down for 0.2 to 6 s, past the 5 s idle timeout), an operation every 0.3 to 1.5 s.
    pub fn of(seed: u64, chaos: Duration) -> Plan {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut kills = Vec::new();
        let mut t = Duration::from_millis(rng.random_range(500..2000));
        while t < chaos {
            let target = if rng.random_bool(0.6) {
                Target::Server(rng.random_range(0..3))
            } else {
                Target::Fleet(rng.random_range(0..4))
            };
            let down = Duration::from_millis(rng.random_range(200..6000));
            kills.push(Kill {
                at: t,
                target,
                down,
            });
            t += Duration::from_millis(rng.random_range(1000..3000));
        }
        let mut ops = Vec::new();
        let mut t = Duration::ZERO;
        while t < chaos {
            let task = rng.random_range(0..TASKS.len());
            let kind = if rng.random_bool(0.4) {
                OpKind::Edit(simulate(&mut rng))
            } else {
                OpKind::Start
            };
            ops.push(Op { at: t, task, kind });
            t += Duration::from_millis(rng.random_range(300..1500));
        }
        Plan { kills, ops }
    }
}

/// What the drivers did, for the summary.
#[derive(Debug, Default)]
pub struct Done {
    pub created: usize,
    pub edits: usize,
    pub starts: usize,
    /// Requests refused (a start while the run goes on) or lost with their server.
    pub refused: usize,
    pub failed: usize,
    /// Run ids started at each task's owner, as the answers said.
    pub runs: Vec<Vec<u64>>,
}

/// Kills and restarts processes as `kills` says, from `start`; every process is up again
/// when it returns.
pub async fn drive_kills(
    kills: &[Kill],
    start: Instant,
    servers: &mut [Proc],
    fleets: &mut [Proc],
) -> anyhow::Result<Vec<String>> {
    let mut timeline: Vec<(Duration, Target, bool)> = Vec::new();
    for k in kills {
        timeline.push((k.at, k.target, false));
        timeline.push((k.at + k.down, k.target, true));
    }
    timeline.sort_by_key(|(at, _, up)| (*at, *up));
    let mut log = Vec::new();
    for (at, target, up) in timeline {
        tokio::time::sleep_until(start + at).await;
        let p = match target {
            Target::Server(i) => &mut servers[i],
            Target::Fleet(i) => &mut fleets[i],
        };
        if up && !p.is_up() {
            p.start()?;
        } else if !up && p.is_up() {
            p.kill();
            log.push(format!("{:.1}s {}", at.as_secs_f64(), p.name));
        }
    }
    Ok(log)
}

fn spec(name: &str) -> canopy::wire::msg::TaskSpec {
    let mut spec = crate::common::simulate_spec(
        name,
        crate::common::tree_scope("Managed devices"),
        500,
        [80, 10, 10],
    );
    spec.store_history_days = 30;
    spec
}

/// Carries out `ops` from `start` on the tasks' owners (`admins`: one per server index of
/// `TASKS`); a task is created by the first operation on it.
pub async fn drive_ops(ops: &[Op], start: Instant, admins: &mut [Admin]) -> Done {
    let mut done = Done {
        runs: vec![Vec::new(); TASKS.len()],
        ..Done::default()
    };
    let mut created = [false; TASKS.len()];
    for op in ops {
        tokio::time::sleep_until(start + op.at).await;
        let (name, owner) = TASKS[op.task];
        let admin = &mut admins[owner];
        if !created[op.task] {
            let request = TaskRequest::Create(Box::new(spec(name)));
            match admin.call(None, AdminRequest::Task(request)).await {
                Ok(_) => done.created += 1,
                Err(e) if e.contains("already") => {}
                Err(_) => {
                    done.failed += 1;
                    continue;
                }
            }
            created[op.task] = true;
            continue;
        }
        let request = match &op.kind {
            OpKind::Edit(task_type) => TaskRequest::Edit {
                task: name.into(),
                changes: Box::new(TaskChanges {
                    task_type: Some(task_type.clone()),
                    ..TaskChanges::default()
                }),
            },
            OpKind::Start => TaskRequest::Start {
                task: name.into(),
                devices: None,
            },
        };
        match admin.call(None, AdminRequest::Task(request)).await {
            Ok(AdminResponse::TaskStarted { run, .. }) => {
                done.starts += 1;
                done.runs[op.task].push(run.run_id);
            }
            Ok(_) => done.edits += 1,
            Err(e) if e.contains("still") || e.contains("running") => done.refused += 1,
            Err(_) => done.failed += 1,
        }
    }
    done
}
