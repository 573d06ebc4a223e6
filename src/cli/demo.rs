//! `canopy demo`: a primary, a secondary and a secondary of that secondary on loopback, in
//! one process, set up the way an administrator would; waits for both links and prints the
//! tree as the primary sees it. Then 200 simulated devices enroll on the primary, a group
//! task runs on them, and its statistics are printed when every device has finished.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::deployment::{Deployment, config_text, parent_of, start, wait_for_tree};
use super::table;
use crate::agent::{Agents, Simulation};
use crate::model::ServerStatus;
use crate::model::schedule::{Schedule, ScheduleOptions};
use crate::model::task::{Notify, RestartPolicy, TaskPayload, TaskType};
use crate::wire::msg::{AdminRequest, AdminResponse, RunView, ScopeSpec, TaskRequest, TaskSpec};

const TOKEN: &str = "canopy-demo-enrollment-token";
const DEVICES: u32 = 200;
const TASK: &str = "Demo scan";

pub async fn run(json: bool) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("canopy-demo-").tempdir()?;
    let d = Deployment::create(dir.path())?;
    d.add_server("primary", 0, None).await?;
    let text = format!(
        "{}\n[[enrollment]]\ntoken = \"{TOKEN}\"\ngroup = \"Managed devices\"\n",
        config_text("primary", 0, None)
    );
    let primary = start(&d.write_config("primary", &text).await?).await?;
    let branch_config = d
        .add_server("branch-1", 0, Some(parent_of(&primary)))
        .await?;
    d.register(primary.local_addr(), "branch-1", "Managed devices")
        .await?;
    let branch = start(&branch_config).await?;
    let leaf_config = d
        .add_server("branch-1a", 0, Some(parent_of(&branch)))
        .await?;
    d.register(branch.local_addr(), "branch-1a", "Managed devices")
        .await?;
    let leaf = start(&leaf_config).await?;

    let admin = d.admin(primary.local_addr()).await?;
    let rows = wait_for_tree(&admin, Duration::from_secs(30), "both links up", |rows| {
        rows.len() == 3 && rows.iter().all(|r| r.status == ServerStatus::Active)
    })
    .await?;

    let fleet = Agents::start(
        d.agent_config("fleet", primary.local_addr(), Some(TOKEN))?,
        Some(Simulation {
            devices: DEVICES,
            seed: 1,
        }),
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while primary.node.connected_devices().len() < DEVICES as usize {
        if Instant::now() > deadline {
            bail!("the simulated devices did not all connect within a minute");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let run = run_group_task(&admin).await?;
    admin.close().await;
    if json {
        let value = serde_json::json!({
            "servers": rows,
            "task": super::task::stats_json(&run)?,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("The tree as the primary sees it:\n");
        print!("{}", table::servers(&rows));
        println!(
            "\nGroup task {TASK:?} on the primary's {DEVICES} simulated devices, when all finished:\n"
        );
        print!("{}", super::task::stats_text(&run));
    }
    fleet.stop().await?;
    leaf.shutdown().await?;
    branch.shutdown().await?;
    primary.shutdown().await?;
    Ok(())
}

/// Creates and starts a group task on "Managed devices" and waits until every device is done.
async fn run_group_task(admin: &super::client::AdminClient) -> anyhow::Result<RunView> {
    let spec = TaskSpec {
        name: TASK.into(),
        task_type: TaskType::Device(TaskPayload::Simulate {
            duration_ms: 300,
            succeeded: 90,
            warning: 6,
            failed: 4,
            need_restart_percent: 10,
        }),
        application: None,
        scope: ScopeSpec::Group {
            path: "Managed devices".into(),
            include_subgroups: true,
            include_secondaries: true,
        },
        restart: RestartPolicy::default(),
        schedule: Schedule::Manually,
        schedule_options: ScheduleOptions::default(),
        account: None,
        notify: Notify::default(),
        store_history_days: 30,
    };
    admin
        .call(AdminRequest::Task(TaskRequest::Create(Box::new(spec))))
        .await?;
    let start = TaskRequest::Start {
        task: TASK.into(),
        devices: None,
    };
    admin.call(AdminRequest::Task(start)).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = TaskRequest::Stats {
            task: TASK.into(),
            run: None,
        };
        let AdminResponse::TaskStats(run) = admin.call(AdminRequest::Task(stats)).await? else {
            bail!("unexpected answer to task stats");
        };
        if run.counters.finished() == run.counters.total() {
            return Ok(run);
        }
        if Instant::now() > deadline {
            return Err(anyhow::anyhow!("{run:?}")).context("the demo task did not finish");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
