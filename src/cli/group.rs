//! `canopy group ...`. (Being written.)

use std::path::Path;

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// The group tree.
    List,
}

pub async fn run(_session_path: &Path, _cmd: GroupCommand) -> anyhow::Result<()> {
    anyhow::bail!("groups are not built yet")
}
