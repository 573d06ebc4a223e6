//! `canopy demo`: the whole story on loopback, in one process, set up the way an
//! administrator would. A primary with two secondaries, one of which has its own secondary,
//! and a virtual server on the primary, each with simulated devices; one group task created
//! and started at the primary; the per-server statistics printed when every device of the
//! tree has finished.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::deployment::{ADMIN_PASSWORD, ADMIN_USER, DemoTree, Deployment, tree};
use super::table;
use crate::model::schedule::{Schedule, ScheduleOptions};
use crate::model::task::{Notify, RestartPolicy, TaskPayload, TaskType};
use crate::wire::msg::{AdminRequest, AdminResponse, RunView, ScopeSpec, TaskRequest, TaskSpec};

const DEVICES: u32 = 100;
const TASK: &str = "Demo scan";

/// Runs the demo; with `serve`, keeps it running until interrupted, the primary serving
/// HTTPS at that address.
pub async fn run(json: bool, serve: Option<SocketAddr>) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("canopy-demo-").tempdir()?;
    let d = Deployment::create(dir.path())?;
    let web = match serve {
        Some(addr) => format!("\n[web]\nlisten = \"{addr}\"\n"),
        None => String::new(),
    };
    let demo = DemoTree::start_with(&d, DEVICES, &web).await?;
    let admin = d.admin(demo.primary().local_addr()).await?;
    let rows = tree(&admin).await?;
    let run = run_group_task(&admin, demo.total_devices()).await?;
    admin.close().await;
    if json {
        let task = super::task::stats_json(&run)?;
        let mut totals = super::task::counts_json(&run.counters);
        if let Some(t) = totals.as_object_mut() {
            t.insert("total".into(), serde_json::json!(run.counters.total()));
            t.insert(
                "need_restart".into(),
                serde_json::json!(run.counters.need_restart),
            );
        }
        let value = serde_json::json!({
            "servers": rows,
            "statistics": task["servers"],
            "totals": totals,
            "task": task,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("The tree as the primary sees it:\n");
        crate::cli::table::show(&table::servers(&rows));
        println!(
            "\nGroup task {TASK:?} created and started at the primary, on the {} simulated devices of the tree, when all finished:\n",
            demo.total_devices()
        );
        crate::cli::table::show(&super::task::servers_text(&run));
        println!();
        crate::cli::table::show(&super::task::stats_text(&run));
        if serve.is_none() {
            println!(
                "\nTo look at this tree in the web console: `make demo-serve` (`canopy demo --serve`)."
            );
        }
    }
    if serve.is_some() {
        if let Some(addr) = demo.primary().web_addr() {
            let ca = d.certs.join("ca.pem");
            eprintln!(
                "\nThe demo tree runs until interrupted (Ctrl-C).\n\
                 The web console: https://{addr}/ (log in as {ADMIN_USER}, password {ADMIN_PASSWORD}).\n\
                 Its certificate is issued by the demo's own CA, {ca}: the browser warns about it\n\
                 unless that CA is trusted. The REST API is under https://{addr}/api/v1/ (README, \"REST API\"):\n\
                 \n  curl --cacert {ca} https://{addr}/api/v1/login -H 'Content-Type: application/json' \\\n    \
                 -d '{{\"user\": \"{ADMIN_USER}\", \"password\": \"{ADMIN_PASSWORD}\"}}'",
                ca = ca.display()
            );
        }
        tokio::signal::ctrl_c().await?;
        eprintln!("interrupted: stopping the demo tree");
    }
    demo.stop().await
}

/// Creates and starts a group task on "Managed devices" (with secondary and virtual
/// servers) and waits until all `devices` of the tree are done.
async fn run_group_task(
    admin: &super::client::AdminClient,
    devices: u64,
) -> anyhow::Result<RunView> {
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
        comment: None,
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
        if run.counters.total() == devices && run.counters.finished() == devices {
            return Ok(run);
        }
        if Instant::now() > deadline {
            return Err(anyhow::anyhow!("{run:?}")).context("the demo task did not finish");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
