//! Prometheus metrics of a physical server and the virtual servers it hosts, one registry
//! for all of them: every series carries the `server` label (the server's name), never a
//! device, task or run id. Counters and histograms move where things happen; the state
//! (devices, runs, child links, the statistics the parent lacks) is read at each scrape
//! (`refresh`), from counts the store keeps without reading the device registry.
//! `http.rs` serves the OpenMetrics text at `GET /metrics` on `metrics.listen`.

mod http;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::{Node, lock};
use crate::model::EventKind;
use crate::store::CommitObserver;
use crate::wire::msg::{AdminResponse, ErrorKind};

pub(super) use http::{Listener, serve};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabel {
    server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    server: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChildLabels {
    server: String,
    child: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdminLabels {
    server: String,
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    server: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    server: String,
    kind: &'static str,
}

type Histograms = Family<ServerLabel, Histogram, fn() -> Histogram>;
type SecondsGauge = Gauge<f64, AtomicU64>;

/// Why a connection was refused before its protocol served it (`canopy_handshakes_refused_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// Too many handshakes in progress.
    Overloaded,
    /// Over `limits.max_connections` or `limits.max_connections_per_address`.
    ConnectionLimit,
    /// The TLS handshake failed (a peer that does not trust the CA, a scan).
    Tls,
    /// The handshake did not finish in time.
    Timeout,
    /// An ALPN this server does not speak.
    UnknownProtocol,
    /// A server whose certificate is missing or not issued by the deployment's CA.
    Untrusted,
    /// A server whose certificate is revoked.
    Revoked,
    /// A server whose certificate is not registered here as a secondary.
    NotRegistered,
}

impl Refused {
    fn as_str(self) -> &'static str {
        match self {
            Refused::Overloaded => "overloaded",
            Refused::ConnectionLimit => "connection_limit",
            Refused::Tls => "tls",
            Refused::Timeout => "timeout",
            Refused::UnknownProtocol => "unknown_protocol",
            Refused::Untrusted => "untrusted",
            Refused::Revoked => "revoked",
            Refused::NotRegistered => "not_registered",
        }
    }
}

/// The metrics of a physical server and of the virtual servers it hosts.
pub(super) struct Metrics {
    registry: Registry,
    results_received: Family<ServerLabel, Counter>,
    results_stored: Family<ServerLabel, Counter>,
    admin_requests: Family<AdminLabels, Counter>,
    handshakes_refused: Family<ReasonLabels, Counter>,
    events: Family<KindLabels, Counter>,
    commit_duration: Histograms,
    commit_batch: Histograms,
    devices: Family<StateLabels, Gauge>,
    runs: Family<StateLabels, Gauge>,
    child_up: Family<ChildLabels, Gauge>,
    child_lag: Family<ChildLabels, Gauge>,
    stats_runs: Family<ServerLabel, Gauge>,
    stats_lag: Family<ServerLabel, SecondsGauge>,
    /// One scrape at a time: the state families are cleared and filled again by each.
    scraping: tokio::sync::Mutex<()>,
}

/// Commit latency buckets: 0.5 ms to 4 s, doubling.
fn commit_seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

/// Jobs per commit: 1 to `store::MAX_BATCH` (1024), doubling.
fn commit_jobs() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 11))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub(super) fn new() -> Metrics {
        let mut r = Registry::default();
        let m = Metrics {
            registry: Registry::default(),
            results_received: Family::default(),
            results_stored: Family::default(),
            admin_requests: Family::default(),
            handshakes_refused: Family::default(),
            events: Family::default(),
            commit_duration: Family::new_with_constructor(commit_seconds),
            commit_batch: Family::new_with_constructor(commit_jobs),
            devices: Family::default(),
            runs: Family::default(),
            child_up: Family::default(),
            child_lag: Family::default(),
            stats_runs: Family::default(),
            stats_lag: Family::default(),
            scraping: tokio::sync::Mutex::new(()),
        };
        r.register(
            "canopy_devices",
            "Devices of the server by state: known (registered, pending ones included), \
             connected (approved and connected now), pending (waiting for an administrator)",
            m.devices.clone(),
        );
        r.register(
            "canopy_results_received",
            "Results (a device's final report on a run) received, resent ones included",
            m.results_received.clone(),
        );
        r.register(
            "canopy_results_stored",
            "Results stored: a device's record of a run made final (a resent result is not \
             stored again)",
            m.results_stored.clone(),
        );
        r.register(
            "canopy_runs",
            "Runs the server keeps, by state (running, paused, completed, stopped)",
            m.runs.clone(),
        );
        r.register(
            "canopy_child_link_up",
            "1 while the registered child (secondary or virtual server) is connected, else 0",
            m.child_up.clone(),
        );
        r.register(
            "canopy_child_replication_lag_entries",
            "Entries of the server's change log the child has not applied (as last kept: at \
             most a few seconds behind a live link)",
            m.child_lag.clone(),
        );
        r.register(
            "canopy_parent_statistics_unacknowledged_runs",
            "On a secondary or virtual server: runs of its parent's tasks whose newest \
             statistics the parent has not acknowledged",
            m.stats_runs.clone(),
        );
        r.register_with_unit(
            "canopy_parent_statistics_lag",
            "On a secondary or virtual server: how long the oldest statistics change the \
             parent has not acknowledged has waited (0 when the parent holds them all)",
            Unit::Seconds,
            m.stats_lag.clone(),
        );
        // The unit in the name only: some OpenMetrics parsers refuse a UNIT on a histogram.
        r.register(
            "canopy_store_commit_duration_seconds",
            "Time from the start of a write transaction of the store to its durable commit",
            m.commit_duration.clone(),
        );
        r.register(
            "canopy_store_commit_batch_size",
            "Write jobs committed in one transaction (group commit)",
            m.commit_batch.clone(),
        );
        r.register(
            "canopy_admin_requests",
            "Administration requests served, by kind (as the audit trail names it) and \
             outcome (ok, or the error kind)",
            m.admin_requests.clone(),
        );
        r.register(
            "canopy_handshakes_refused",
            "Connections refused before their protocol served them, by reason",
            m.handshakes_refused.clone(),
        );
        r.register(
            "canopy_events",
            "Events of the server's own recorded in its event log, by kind",
            m.events.clone(),
        );
        Metrics { registry: r, ..m }
    }

    /// What the store of the server `name` reports its commits to.
    pub(super) fn commit_observer(&self, name: &str) -> Arc<dyn CommitObserver> {
        let label = server(name);
        Arc::new(CommitHistograms {
            duration: self.commit_duration.get_or_create(&label).clone(),
            batch: self.commit_batch.get_or_create(&label).clone(),
        })
    }

    pub(super) fn result_received(&self, name: &str) {
        self.results_received.get_or_create(&server(name)).inc();
    }

    pub(super) fn result_stored(&self, name: &str) {
        self.results_stored.get_or_create(&server(name)).inc();
    }

    /// An administration request `kind` (`AdminRequest::name`, a fixed set) was answered.
    pub(super) fn admin_request(&self, name: &str, kind: &'static str, response: &AdminResponse) {
        let labels = AdminLabels {
            server: name.to_string(),
            kind,
            outcome: outcome(response),
        };
        self.admin_requests.get_or_create(&labels).inc();
    }

    pub(super) fn handshake_refused(&self, name: &str, reason: Refused) {
        let labels = ReasonLabels {
            server: name.to_string(),
            reason: reason.as_str(),
        };
        self.handshakes_refused.get_or_create(&labels).inc();
    }

    pub(super) fn event(&self, name: &str, kind: EventKind) {
        let labels = KindLabels {
            server: name.to_string(),
            kind: kind.as_str(),
        };
        self.events.get_or_create(&labels).inc();
    }

    /// The OpenMetrics text of every series, with the state of `host` and of the virtual
    /// servers it hosts read now.
    pub(super) async fn scrape(&self, host: &Node) -> Result<String, std::fmt::Error> {
        let _one = self.scraping.lock().await;
        self.devices.clear();
        self.runs.clear();
        self.child_up.clear();
        self.child_lag.clear();
        self.stats_runs.clear();
        self.stats_lag.clear();
        let tenants: Vec<Arc<Node>> = lock(&host.tenants)
            .values()
            .map(|t| t.node.clone())
            .collect();
        self.refresh(host).await;
        for tenant in &tenants {
            self.refresh(tenant).await;
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    /// Sets the state gauges of one server; what cannot be read is left out, and logged.
    async fn refresh(&self, node: &Node) {
        let name = node.name();
        let label = |state: &'static str| StateLabels {
            server: name.to_string(),
            state,
        };
        let store = &node.store;
        let connected = lock(&node.devices).len() as i64;
        self.devices
            .get_or_create(&label("connected"))
            .set(connected);
        match (
            store.device_count().await,
            store.pending_device_count().await,
        ) {
            (Ok(known), Ok(pending)) => {
                self.devices
                    .get_or_create(&label("known"))
                    .set(gauge(known));
                self.devices
                    .get_or_create(&label("pending"))
                    .set(gauge(pending));
            }
            (Err(e), _) | (_, Err(e)) => tracing::warn!("metrics of {name}: devices: {e}"),
        }
        match store.run_states().await {
            Ok(states) => {
                for (state, n) in states.by_state() {
                    self.runs
                        .get_or_create(&label(state.as_str()))
                        .set(gauge(n));
                }
            }
            Err(e) => tracing::warn!("metrics of {name}: runs: {e}"),
        }
        match (store.log_state().await, store.children_applied().await) {
            (Ok(log), Ok(children)) => {
                let live = node.connected_names();
                for (child, applied) in children {
                    let lag = match applied {
                        Some((epoch, seq)) if epoch == log.epoch => {
                            log.last_seq.saturating_sub(seq)
                        }
                        // Never applied anything of this epoch: the whole log.
                        _ => log.last_seq,
                    };
                    let up = live.contains(&child);
                    let labels = ChildLabels {
                        server: name.to_string(),
                        child,
                    };
                    self.child_up.get_or_create(&labels).set(i64::from(up));
                    self.child_lag.get_or_create(&labels).set(gauge(lag));
                }
            }
            (Err(e), _) | (_, Err(e)) => tracing::warn!("metrics of {name}: child links: {e}"),
        }
        if node.reports_up() {
            let (runs, since) = *lock(&node.statistics_behind);
            let lag = since.map_or(Duration::ZERO, |s| {
                Instant::now().saturating_duration_since(s)
            });
            let label = server(name);
            self.stats_runs.get_or_create(&label).set(runs as i64);
            self.stats_lag.get_or_create(&label).set(lag.as_secs_f64());
        }
    }
}

fn server(name: &str) -> ServerLabel {
    ServerLabel {
        server: name.to_string(),
    }
}

/// A count as a gauge's value (counts never come near `i64::MAX`).
fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `ok`, or the kind of error an administration request got.
fn outcome(response: &AdminResponse) -> &'static str {
    match response {
        AdminResponse::Error { kind, .. } => match kind {
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Internal => "internal",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::LimitReached => "limit_reached",
        },
        _ => "ok",
    }
}

/// The histograms of one server's store.
struct CommitHistograms {
    duration: Histogram,
    batch: Histogram,
}

impl CommitObserver for CommitHistograms {
    fn committed(&self, took: Duration, jobs: usize) {
        self.duration.observe(took.as_secs_f64());
        self.batch.observe(jobs as f64);
    }
}

/// How far a secondary's parent is behind its statistics, as its link last saw it:
/// `ParentSession::statistics_behind`.
pub(super) type StatisticsBehind = Mutex<(usize, Option<Instant>)>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_family_with_its_type() {
        let m = Metrics::new();
        m.result_received("primary");
        m.event("primary", EventKind::RunFinished);
        m.handshake_refused("primary", Refused::Revoked);
        let observer = m.commit_observer("primary");
        observer.committed(Duration::from_millis(3), 5);
        m.stats_lag.get_or_create(&server("branch-1")).set(1.5);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &m.registry).unwrap();
        for line in [
            "# TYPE canopy_results_received counter",
            "canopy_results_received_total{server=\"primary\"} 1",
            "canopy_events_total{server=\"primary\",kind=\"run-finished\"} 1",
            "canopy_handshakes_refused_total{server=\"primary\",reason=\"revoked\"} 1",
            "# TYPE canopy_store_commit_duration_seconds histogram",
            "# UNIT canopy_parent_statistics_lag_seconds seconds",
            "canopy_parent_statistics_lag_seconds{server=\"branch-1\"} 1.5",
            "canopy_store_commit_duration_seconds_count{server=\"primary\"} 1",
            "canopy_store_commit_batch_size_sum{server=\"primary\"} 5.0",
            "# EOF",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
    }
}
