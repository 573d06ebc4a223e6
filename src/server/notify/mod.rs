//! Notifications by email and webhook: each channel of a physical server tails the event
//! log from its stored cursor, sends the events its filter takes in order, in batches of at
//! most [`plan::BATCH_MAX`], and stores its cursor past a batch only once the receiver
//! accepted it; a failure sends the same batch again after a backoff. The decisions are
//! `plan`'s (sans-IO); the documents `format`'s; the sending `smtp`'s and `webhook`'s.
//! Virtual servers have no notifier: their events reach their host's log, whose channels
//! send them.

pub(super) mod admin;
mod format;
mod plan;
mod smtp;
mod webhook;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Node, lock, now_ms};
use crate::config::NotifyFiles;
use crate::model::notify::{ChannelCursor, ChannelFilter, ChannelTarget, StoredChannel};
use crate::model::{Event, UnixMillis};
use crate::store::Store;
use crate::wire::msg::NotifyChannelView;
use plan::ChannelPlan;

/// What webhook secrets are sealed for at rest (see `store::sealing`).
const SECRET_PURPOSE: &[u8] = b"canopy notification webhook secret";
/// How long a stopping server waits for a delivery under way before it drops it (the
/// batch is then sent again after the restart).
const STOP_WAIT: Duration = Duration::from_secs(3);

/// How a channel sends.
enum Sender {
    Email {
        relay: Arc<smtp::Relay>,
        to: Vec<String>,
    },
    Webhook(webhook::Webhook),
    /// A channel that cannot send (its secret does not open, no relay is configured): every
    /// delivery fails with this, so its status says why and nothing is skipped.
    Broken(String),
}

/// One channel, as its task and the admin requests share it.
struct Channel {
    name: String,
    target: ChannelTarget,
    filter: ChannelFilter,
    /// Defined in the config (not removable with the CLI).
    from_config: bool,
    sender: Sender,
}

impl Channel {
    async fn deliver(&self, server: &str, events: &[Event]) -> Result<(), String> {
        match &self.sender {
            Sender::Email { relay, to } => {
                let subject = format::subject(server, events);
                relay.send(to, &subject, format::body(server, events)).await
            }
            Sender::Webhook(hook) => {
                let first = events.first().map_or(0, |e| e.seq);
                let body = format::document(server, &self.name, events, false);
                hook.post(body, &format!("{}-{first}", self.name)).await
            }
            Sender::Broken(why) => Err(why.clone()),
        }
    }

    /// `canopy notify test`: a message outside the queue.
    async fn test(&self, server: &str, now: UnixMillis) -> Result<(), String> {
        match &self.sender {
            Sender::Email { relay, to } => {
                let subject = format!(
                    "[canopy] {server}: test of notification channel {}",
                    self.name
                );
                let body = format!(
                    "A test message from Canopy server {server}, channel {}, sent at {}.\n\
                     It sends {}.\n",
                    self.name,
                    crate::model::format_time(now),
                    self.filter.describe()
                );
                relay.send(to, &subject, body).await
            }
            Sender::Webhook(hook) => {
                let body = format::document(server, &self.name, &[], true);
                hook.post(body, &format!("{}-test-{now}", self.name)).await
            }
            Sender::Broken(why) => Err(why.clone()),
        }
    }
}

/// What `notify list` shows of a channel's progress.
#[derive(Clone, Debug, Default)]
struct Status {
    cursor: ChannelCursor,
    pending: u64,
    last_error: Option<String>,
    next_retry: Option<UnixMillis>,
}

struct Running {
    channel: Arc<Channel>,
    status: Arc<Mutex<Status>>,
    task: JoinHandle<()>,
}

/// The channels of one physical server and their tasks.
pub(super) struct Notifier {
    server: String,
    store: Store,
    relay: Option<Arc<smtp::Relay>>,
    runtime: tokio::runtime::Handle,
    shutdown: watch::Receiver<bool>,
    channels: Mutex<BTreeMap<String, Running>>,
}

/// Certificates from PEM text (an administrator's CA).
fn certs_of(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the CA is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err("the CA holds no certificate".into());
    }
    Ok(certs)
}

fn webhook_sender(
    url: &str,
    secret: String,
    ca: Option<&[CertificateDer<'static>]>,
) -> Result<Sender, String> {
    let tls = webhook::tls_config(ca)?;
    Ok(Sender::Webhook(webhook::Webhook::new(url, secret, tls)?))
}

impl Notifier {
    /// Builds the channels of the config and of the database and starts each where its
    /// cursor is (a channel seen for the first time at the log's end).
    pub(super) async fn start(node: &Arc<Node>, files: NotifyFiles) -> anyhow::Result<Arc<Self>> {
        let config = &node.config.notify;
        let relay = match &config.smtp {
            Some(smtp) => Some(Arc::new(
                smtp::Relay::new(smtp, &files, node.name()).map_err(|e| anyhow::anyhow!(e))?,
            )),
            None => None,
        };
        let notifier = Arc::new(Notifier {
            server: node.name().to_string(),
            store: node.store.clone(),
            relay,
            runtime: tokio::runtime::Handle::current(),
            shutdown: node.shutdown.subscribe(),
            channels: Mutex::new(BTreeMap::new()),
        });
        for c in &config.channels {
            let sender = match &c.target {
                ChannelTarget::Email { to } => notifier.email_sender(to),
                ChannelTarget::Webhook { url } => {
                    let secret = files.secrets.get(&c.name).map(|s| s.0.clone());
                    let secret = secret.unwrap_or_default();
                    let ca = files.cas.get(&c.name).map(Vec::as_slice);
                    webhook_sender(url, secret, ca)
                        .map_err(|e| anyhow::anyhow!("notify.webhook {:?}: {e}", c.name))?
                }
            };
            let channel = Channel {
                name: c.name.clone(),
                target: c.target.clone(),
                filter: c.filter.clone(),
                from_config: true,
                sender,
            };
            notifier.launch(channel).await?;
        }
        for stored in node.store.notify_channels().await? {
            if config.channels.iter().any(|c| c.name == stored.name) {
                tracing::warn!(
                    channel = %stored.name,
                    "a notification channel an administrator added has the name of one of \
                     the config's: the config's is used"
                );
                continue;
            }
            let channel = notifier.stored_channel(node, &stored, None);
            notifier.launch(channel).await?;
        }
        Ok(notifier)
    }

    fn email_sender(&self, to: &[String]) -> Sender {
        match &self.relay {
            Some(relay) => Sender::Email {
                relay: relay.clone(),
                to: to.to_vec(),
            },
            None => Sender::Broken("no SMTP relay: [notify.smtp] is not in the config".into()),
        }
    }

    /// The channel of a stored record; `secret` when the caller has it in clear already.
    fn stored_channel(
        &self,
        node: &Node,
        stored: &StoredChannel,
        secret: Option<String>,
    ) -> Channel {
        let sender = match &stored.target {
            ChannelTarget::Email { to } => self.email_sender(to),
            ChannelTarget::Webhook { url } => {
                let secret = match (secret, &stored.secret) {
                    (Some(secret), _) => Ok(secret),
                    (None, Some(sealed)) => node
                        .secrets
                        .open_for(SECRET_PURPOSE, sealed)
                        .map_err(|e| format!("its secret does not open: {e}")),
                    (None, None) => Err("it has no secret".to_string()),
                };
                let ca = stored.ca_pem.as_deref().map(certs_of).transpose();
                match (secret, ca) {
                    (Ok(secret), Ok(ca)) => {
                        webhook_sender(url, secret, ca.as_deref()).unwrap_or_else(Sender::Broken)
                    }
                    (Err(e), _) | (_, Err(e)) => Sender::Broken(e),
                }
            }
        };
        if let Sender::Broken(why) = &sender {
            tracing::error!(channel = %stored.name, "notification channel cannot send: {why}");
        }
        Channel {
            name: stored.name.clone(),
            target: stored.target.clone(),
            filter: stored.filter.clone(),
            from_config: false,
            sender,
        }
    }

    /// Starts `channel`'s task from its stored cursor.
    async fn launch(&self, channel: Channel) -> anyhow::Result<()> {
        let cursor = self.store.notify_cursor(&channel.name).await?;
        self.spawn(channel, cursor);
        Ok(())
    }

    fn spawn(&self, channel: Channel, cursor: ChannelCursor) {
        let channel = Arc::new(channel);
        let status = Arc::new(Mutex::new(Status {
            cursor,
            ..Status::default()
        }));
        let task = self.runtime.spawn(run_channel(
            self.server.clone(),
            channel.clone(),
            self.store.clone(),
            ChannelPlan::new(cursor),
            status.clone(),
            self.shutdown.clone(),
        ));
        let running = Running {
            channel: channel.clone(),
            status,
            task,
        };
        if let Some(old) = lock(&self.channels).insert(channel.name.clone(), running) {
            old.task.abort();
        }
    }

    /// Names of the channels running.
    fn names(&self) -> Vec<String> {
        lock(&self.channels).keys().cloned().collect()
    }

    /// Names of the config's channels.
    fn config_names(&self) -> Vec<String> {
        lock(&self.channels)
            .values()
            .filter(|r| r.channel.from_config)
            .map(|r| r.channel.name.clone())
            .collect()
    }

    fn channel(&self, name: &str) -> Option<Arc<Channel>> {
        lock(&self.channels).get(name).map(|r| r.channel.clone())
    }

    /// Stops and forgets a channel's task.
    fn forget(&self, name: &str) {
        if let Some(running) = lock(&self.channels).remove(name) {
            running.task.abort();
        }
    }

    /// Every channel as `notify list` shows it, in name order; `last` is the log's end.
    fn views(&self, last: u64) -> Vec<NotifyChannelView> {
        lock(&self.channels)
            .values()
            .map(|r| {
                let s = lock(&r.status).clone();
                let c = &r.channel;
                NotifyChannelView {
                    name: c.name.clone(),
                    target: c.target.clone(),
                    filter: c.filter.clone(),
                    source: if c.from_config { "config" } else { "admin" }.into(),
                    cursor: s.cursor.after,
                    behind: last.saturating_sub(s.cursor.after),
                    pending: s.pending,
                    last_delivery: s.cursor.last_delivery,
                    last_error: s.last_error,
                    next_retry: s.next_retry,
                    skipped: s.cursor.skipped,
                }
            })
            .collect()
    }

    /// At shutdown (the server's shutdown watch is set already): lets a delivery under way
    /// end for a moment, then stops every task.
    pub(super) async fn stop(&self) {
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *lock(&self.channels))
            .into_values()
            .map(|r| r.task)
            .collect();
        let deadline = tokio::time::Instant::now() + STOP_WAIT;
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

/// Waits `wait` or until the server stops; whether it stops.
async fn pause(shutdown: &mut watch::Receiver<bool>, wait: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}

/// One channel's task: reads the log after its cursor, sends, stores the cursor; waits for
/// new events or the next retry.
async fn run_channel(
    server: String,
    channel: Arc<Channel>,
    store: Store,
    mut plan: ChannelPlan,
    status: Arc<Mutex<Status>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = channel.name.as_str();
    let config = channel.from_config;
    let mut last_event = store.signals().last_event();
    let publish = |plan: &ChannelPlan| {
        let mut s = lock(&status);
        s.cursor = plan.cursor();
        s.pending = plan.batch().map_or(0, |b| b.events.len() as u64);
        s.last_error = plan.last_error().map(str::to_string);
        s.next_retry = plan.retry_at();
    };
    loop {
        if *shutdown.borrow() {
            return;
        }
        if plan.batch().is_none() {
            // Marked seen before the read: an event stored after it wakes the wait below.
            last_event.borrow_and_update();
            let read = async {
                let last = store.last_event_seq().await?;
                if plan.log_ends_at(last) {
                    tracing::warn!(
                        channel = name,
                        "the event log ends before this channel's cursor (a database copy?): \
                         it goes on from the log's end, {last}"
                    );
                }
                store.events_after(plan.read_after(), plan::READ_MAX).await
            };
            let events = match read.await {
                Ok(events) => events,
                Err(e) => {
                    tracing::error!(channel = name, "cannot read the event log: {e}");
                    if pause(&mut shutdown, Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
            };
            let read_all = events.len() < plan::READ_MAX as usize;
            let taken = plan.take_events(&events, &channel.filter);
            if taken.skipped > 0 {
                tracing::warn!(
                    channel = name,
                    skipped = taken.skipped,
                    "{} events left the event log (its retention, [events]) before this \
                     channel read them: any notification among them is lost",
                    taken.skipped
                );
            }
            if let Some(cursor) = plan.cursor_to_store()
                && let Err(e) = store.set_notify_cursor(name, cursor, config).await
            {
                tracing::error!(channel = name, "cannot store the channel's cursor: {e}");
            }
            publish(&plan);
            if plan.batch().is_none() {
                if read_all {
                    tokio::select! {
                        changed = last_event.changed() => if changed.is_err() { return },
                        _ = shutdown.changed() => return,
                    }
                }
                continue;
            }
        }
        if let Some(at) = plan.retry_at() {
            let wait = at.saturating_sub(now_ms());
            if wait > 0 && pause(&mut shutdown, Duration::from_millis(wait as u64)).await {
                return;
            }
        }
        let Some(batch) = plan.batch().cloned() else {
            continue;
        };
        match channel.deliver(&server, &batch.events).await {
            Ok(()) => {
                let (cursor, recovered) = plan.delivered(now_ms());
                if recovered {
                    tracing::info!(channel = name, "notification channel delivers again");
                }
                if let Err(e) = store.set_notify_cursor(name, cursor, config).await {
                    // Delivered, not recorded: after a restart this batch goes again, with
                    // the same X-Canopy-Delivery id.
                    tracing::error!(channel = name, "cannot store the channel's cursor: {e}");
                }
            }
            Err(e) => {
                let failure = plan.failed(now_ms(), e.clone(), rand::random::<f64>());
                if failure.news {
                    tracing::warn!(
                        channel = name,
                        failures = failure.failures,
                        "notification channel failed: {e}; {} events wait, retried at {}",
                        batch.events.len(),
                        crate::model::format_time(failure.retry_at)
                    );
                }
            }
        }
        publish(&plan);
    }
}
