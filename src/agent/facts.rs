//! What a device reports about itself: read from the machine for a real agent, drawn from a
//! seed for a simulated one.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use super::apps::Applications;
use super::config::AgentConfig;
use crate::agent::exec::{self, Details, TaskPayload};
use crate::model::device::{Application, DeviceFacts};
use crate::wire::SOFTWARE_VERSION;

/// The facts of this machine, from the inventory executor.
pub async fn of_this_machine(config: &AgentConfig) -> DeviceFacts {
    let outcome = exec::execute(
        &TaskPayload::Inventory,
        0,
        exec::Steering::unsteered(),
        None,
    )
    .await;
    let inventory = match outcome.details {
        Details::Inventory(inventory) => inventory,
        _ => Default::default(),
    };
    let hostname = if inventory.hostname.is_empty() {
        "device".to_string()
    } else {
        inventory.hostname
    };
    DeviceFacts {
        display_name: config.name.clone().unwrap_or_else(|| hostname.clone()),
        dns_name: hostname,
        addresses: inventory.addresses,
        os: inventory.os,
        agent_version: SOFTWARE_VERSION.to_string(),
        tags: Vec::new(),
        applications: std::sync::Arc::new(Applications::from_config(config))
            .snapshot_async()
            .await,
        time_zone: config.time_zone.clone().unwrap_or_else(local_time_zone),
    }
}

/// The system's IANA time zone name, or UTC.
fn local_time_zone() -> String {
    jiff::tz::TimeZone::system()
        .iana_name()
        .unwrap_or("UTC")
        .to_string()
}

const OSES: &[&str] = &[
    "Debian GNU/Linux 12 (bookworm)",
    "Ubuntu 24.04 LTS",
    "Windows 11 Pro 23H2",
    "Windows 10 Enterprise 22H2",
    "macOS 14 Sonoma",
    "Red Hat Enterprise Linux 9.4",
];
const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Australia/Sydney",
];
const TAGS: &[&str] = &["finance", "hr", "engineering", "laptop", "server", "kiosk"];
const APPS: &[&str] = &[
    "Endpoint Security",
    "Network Agent",
    "Office Suite",
    "Browser",
];

/// The facts of simulated device `index`: distinct name and address, the rest drawn from
/// `seed`, so the same seed gives the same fleet.
pub fn simulated(index: u32, seed: u64) -> DeviceFacts {
    let mut rng =
        StdRng::seed_from_u64(seed ^ (u64::from(index).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    let name = format!("sim-{index:05}");
    // Reported addresses only: nothing is ever sent to them.
    let n = index + 1;
    let address = format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
    let tag_count = rng.random_range(0..=2);
    let mut tags: Vec<String> = TAGS
        .choose_multiple(&mut rng, tag_count)
        .map(|t| t.to_string())
        .collect();
    tags.sort();
    let mut applications = Vec::new();
    for app in APPS {
        if rng.random_bool(0.7) {
            applications.push(Application {
                name: app.to_string(),
                running: rng.random_bool(0.9),
            });
        }
    }
    DeviceFacts {
        display_name: name.clone(),
        dns_name: format!("{name}.sim.canopy.test"),
        addresses: vec![address],
        os: OSES.choose(&mut rng).map_or("Linux", |s| *s).to_string(),
        agent_version: SOFTWARE_VERSION.to_string(),
        tags,
        applications,
        time_zone: ZONES.choose(&mut rng).map_or("UTC", |s| *s).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_fleets_are_seeded_and_distinct() {
        assert_eq!(simulated(7, 1), simulated(7, 1));
        assert_ne!(simulated(7, 1).addresses, simulated(8, 1).addresses);
        let oses: std::collections::HashSet<_> = (0..200).map(|i| simulated(i, 1).os).collect();
        assert!(oses.len() > 3);
        assert!((0..200).all(|i| jiff::tz::TimeZone::get(&simulated(i, 3).time_zone).is_ok()));
    }
}
