//! The messages of the federation link (`canopy-fed/1`): a secondary's hello, and what
//! parent and secondary send each other on the link stream.

use serde::{Deserialize, Serialize};

use super::{AdminRequest, AdminResponse};
use crate::model::link::{Change, StatsRow};
use crate::model::task::TaskRecord;
use crate::model::{Event, Role, ServerRow};

/// The first frame a secondary sends on its link to its parent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildHello {
    /// The secondary's own node name (its certificate's name).
    pub name: String,
    pub software_version: String,
    /// The secondary's installation: made with its database, so a reinstalled secondary
    /// (same certificate, new database) is told from the one before.
    pub instance_id: String,
    /// The last change of the parent's log the secondary applied.
    pub last_applied: u64,
    /// The epoch of the parent's log that `last_applied` counts in (0: none yet).
    pub parent_epoch: u64,
    /// The epoch of the secondary's own change log: its statistics rows carry it.
    pub epoch: u64,
}

/// Parent to secondary, on the link stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParentMsg {
    /// The secondary was recognised by its certificate's fingerprint.
    Welcome {
        parent_name: String,
        /// The display name the parent registered the secondary under.
        registered_name: String,
        group: String,
        /// The parent's change log: its epoch and last sequence number. A secondary whose
        /// cursor counts in another epoch resynchronises.
        log_epoch: u64,
        log_last_seq: u64,
        /// The highest of the secondary's events the parent holds, counted in the epoch of
        /// its hello: it sends its events from there.
        events_held: u64,
        /// The log was trimmed past the secondary's cursor: the parent sends a snapshot of
        /// its state as the entries after this number, up to `log_last_seq`, which the
        /// secondary applies as a resynchronisation (`sync::snapshot`).
        snapshot_from: Option<u64>,
    },
    /// Entry `seq` of the parent's change log, as it concerns this secondary.
    Change { seq: u64, change: Box<TaskChange> },
    /// The rows of statistics report `report_id` about the parent's run `run_id` are stored.
    StatsAck { run_id: u64, report_id: u64 },
    /// An administrator's request for a server at or below this secondary.
    Request {
        id: u64,
        request: Box<ForwardedRequest>,
    },
    /// The secondary's events are held up to its sequence number (cumulative).
    EventsAck(u64),
}

/// A change of the log: the task travels with its upserts, its password sealed with the
/// link's key.
pub type TaskChange = Change<TaskRecord>;

/// An administrator's request relayed down the tree, hop by hop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardedRequest {
    /// Names below the server receiving it; empty: that server serves it.
    pub path: Vec<String>,
    /// Who asked, at the server where they logged in, and their role there.
    pub user: String,
    pub role: Role,
    pub request: AdminRequest,
}

/// Secondary to parent, on the link stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChildMsg {
    /// The secondary's whole subtree, paths relative to the secondary, and how many devices
    /// the secondary itself manages; replaces the last one.
    Subtree { devices: u64, rows: Vec<ServerRow> },
    /// Every change of the parent's log up to this sequence is stored.
    Ack(u64),
    /// Send every change after this sequence again.
    Resume(u64),
    /// Statistics of the parent's run `run_id`: one row per server of the secondary's
    /// subtree, the secondary's own first.
    Stats {
        run_id: u64,
        report_id: u64,
        rows: Vec<StatsRow>,
    },
    /// The answer to `ParentMsg::Request` `id`.
    Response {
        id: u64,
        response: Box<AdminResponse>,
    },
    /// Events of the secondary's log, oldest first, with their sequence numbers there and
    /// the path below it they happened on.
    Events { events: Vec<Event> },
}
