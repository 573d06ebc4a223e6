//! `canopy demo`: a primary, a secondary and a secondary of that secondary on loopback, in
//! one process, set up the way an administrator would; waits for both links and prints the
//! tree as the primary sees it.

use std::time::Duration;

use super::deployment::{Deployment, parent_of, start, wait_for_tree};
use super::table;
use crate::model::ServerStatus;

pub async fn run(json: bool) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("canopy-demo-").tempdir()?;
    let d = Deployment::create(dir.path())?;
    let primary = start(&d.add_server("primary", 0, None).await?).await?;
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
    admin.close().await;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "servers": rows }))?
        );
    } else {
        println!("The tree as the primary sees it:\n");
        print!("{}", table::servers(&rows));
    }
    leaf.shutdown().await?;
    branch.shutdown().await?;
    primary.shutdown().await?;
    Ok(())
}
