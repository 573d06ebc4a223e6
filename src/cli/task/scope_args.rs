//! Where a task runs: the scope flags, and the device lists they read.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use clap::Args;

use crate::model::scope;
use crate::wire::msg::ScopeSpec;

/// The largest device list file `--devices-file` reads.
const MAX_DEVICES_FILE_BYTES: u64 = 1024 * 1024;

/// Where the task runs. Exactly one when creating; at most one when editing.
#[derive(Args, Debug, Default, Clone)]
#[command(next_help_heading = "Scope (exactly one when creating)")]
pub(super) struct ScopeArgs {
    /// Group task: the devices of this group and its subgroups (quote paths:
    /// "Managed devices/Branch").
    #[arg(long, value_name = "PATH")]
    group: Option<String>,
    /// With --group: only the group's own devices, not those of its subgroups.
    #[arg(long)]
    no_subgroups: bool,
    /// With --group: not the devices of secondary servers placed in the group.
    #[arg(long)]
    no_secondaries: bool,
    /// Task for specific devices: IP addresses, ranges (a-b or CIDR), host or DNS names,
    /// comma-separated (repeatable; at most 1000). Names match devices the server knows.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    devices: Vec<String>,
    /// Task for specific devices, listed in a text file, one address per line (at most
    /// 1000, file at most 1 MiB).
    #[arg(long, value_name = "FILE")]
    devices_file: Option<PathBuf>,
    /// Task for a device selection (repeatable; all must hold): group=PATH,
    /// subgroups=yes|no, tag=T, os=TEXT, ip=RANGE, app=NAME, connected=yes|no. Runs only on
    /// connected devices, on the server's time.
    #[arg(long = "where", value_name = "KEY=VALUE")]
    conditions: Vec<String>,
    /// Local task: this one device (its name or id).
    #[arg(long, value_name = "DEVICE")]
    device: Option<String>,
    /// Administration Server task (backup and maintenance; only those).
    #[arg(long)]
    server: bool,
}

impl ScopeArgs {
    pub(super) fn given(&self) -> Vec<&'static str> {
        let mut given = Vec::new();
        if self.group.is_some() {
            given.push("--group");
        }
        if !self.devices.is_empty() {
            given.push("--devices");
        }
        if self.devices_file.is_some() {
            given.push("--devices-file");
        }
        if !self.conditions.is_empty() {
            given.push("--where");
        }
        if self.device.is_some() {
            given.push("--device");
        }
        if self.server {
            given.push("--server");
        }
        given
    }

    /// The scope given, if any; more than one is an error.
    pub(super) fn build(&self) -> anyhow::Result<Option<ScopeSpec>> {
        let given = self.given();
        if self.group.is_none() {
            for (set, flag) in [
                (self.no_subgroups, "--no-subgroups"),
                (self.no_secondaries, "--no-secondaries"),
            ] {
                if set {
                    bail!("{flag} applies only with --group");
                }
            }
        }
        if given.len() > 1 {
            bail!(
                "give one scope, not several: {} were given",
                given.join(" and ")
            );
        }
        if let Some(path) = &self.group {
            return Ok(Some(ScopeSpec::Group {
                path: path.clone(),
                include_subgroups: !self.no_subgroups,
                include_secondaries: !self.no_secondaries,
            }));
        }
        if !self.devices.is_empty() {
            let entries: Vec<String> = self
                .devices
                .iter()
                .map(|e| e.trim().to_string())
                .filter(|e| !e.is_empty())
                .collect();
            check_device_list("--devices", &entries)?;
            return Ok(Some(ScopeSpec::Devices { entries }));
        }
        if let Some(file) = &self.devices_file {
            let entries = read_devices_file(file)?;
            check_device_list(&format!("--devices-file {}", file.display()), &entries)?;
            return Ok(Some(ScopeSpec::Devices { entries }));
        }
        if !self.conditions.is_empty() {
            for condition in &self.conditions {
                match condition.split_once('=') {
                    Some((key, _)) if !key.trim().is_empty() => {}
                    _ => bail!("--where {condition:?}: give a condition as KEY=VALUE"),
                }
            }
            return Ok(Some(ScopeSpec::Selection {
                conditions: self.conditions.clone(),
            }));
        }
        if let Some(device) = &self.device {
            return Ok(Some(ScopeSpec::Local {
                device: device.clone(),
            }));
        }
        if self.server {
            return Ok(Some(ScopeSpec::Server));
        }
        Ok(None)
    }
}

/// Checks a device list as the server will (the server parses it again and resolves it).
pub(super) fn check_device_list(flag: &str, entries: &[String]) -> anyhow::Result<()> {
    if entries.is_empty() {
        bail!("{flag}: the list holds no devices");
    }
    scope::parse_list(entries.iter().map(String::as_str)).map_err(|e| anyhow!("{flag}: {e}"))?;
    Ok(())
}

/// The non-blank lines of a device list file, trimmed.
fn read_devices_file(path: &Path) -> anyhow::Result<Vec<String>> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let too_big = || {
        anyhow!(
            "{} is larger than 1 MiB: a device list holds at most {} entries",
            path.display(),
            scope::MAX_LIST_ENTRIES
        )
    };
    if file.metadata().map(|m| m.len()).unwrap_or(0) > MAX_DEVICES_FILE_BYTES {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    file.take(MAX_DEVICES_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > MAX_DEVICES_FILE_BYTES {
        return Err(too_big());
    }
    scope::list_file_items(&bytes)
        .ok_or_else(|| anyhow!("{} is not a text file (UTF-8)", path.display()))
}
