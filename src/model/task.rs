//! What a task does on a device, and how a run ends there.

use serde::{Deserialize, Serialize};

/// A device's state for one run of a task (bit values as in the reference product's API).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum DeviceState {
    /// The change is not yet delivered to the device.
    Pending,
    /// Delivered; ready to start manually or by schedule.
    Scheduled,
    Running,
    Succeeded,
    Warning,
    Failed,
    Paused,
}

impl DeviceState {
    pub const ALL: [DeviceState; 7] = [
        DeviceState::Pending,
        DeviceState::Scheduled,
        DeviceState::Running,
        DeviceState::Succeeded,
        DeviceState::Warning,
        DeviceState::Failed,
        DeviceState::Paused,
    ];

    /// The reference product's bit for this state.
    pub fn bit(self) -> u8 {
        match self {
            DeviceState::Pending => 0x01,
            DeviceState::Running => 0x02,
            DeviceState::Succeeded => 0x04,
            DeviceState::Warning => 0x08,
            DeviceState::Failed => 0x10,
            DeviceState::Scheduled => 0x20,
            DeviceState::Paused => 0x40,
        }
    }

    /// A run in this state on a device is over.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            DeviceState::Succeeded | DeviceState::Warning | DeviceState::Failed
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Pending => "pending",
            DeviceState::Scheduled => "scheduled",
            DeviceState::Running => "running",
            DeviceState::Succeeded => "succeeded",
            DeviceState::Warning => "warning",
            DeviceState::Failed => "failed",
            DeviceState::Paused => "paused",
        }
    }
}
