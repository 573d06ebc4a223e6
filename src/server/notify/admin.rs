//! `canopy notify ...`: the channels of this server, listed, added, removed and tested by
//! an administrator. An added webhook's secret is sealed with the server's key before it is
//! stored, and no answer or log line holds it.

use std::sync::Arc;

use super::super::auth::Session;
use super::super::reply::{error, internal, invalid, page_by_path};
use super::super::{Node, now_ms};
use super::{Notifier, SECRET_PURPOSE};
use crate::model::notify::{
    ChannelTarget, MAX_RECIPIENTS, StoredChannel, check_channel_name, check_email_address,
    check_webhook_url,
};
use crate::wire::msg::{AdminResponse, ErrorKind, NotifyChannelSpec, NotifyRequest};

pub(in crate::server) async fn handle(
    node: &Arc<Node>,
    session: &Session,
    request: NotifyRequest,
) -> AdminResponse {
    let Some(notifier) = node.notifier.get() else {
        return error(
            ErrorKind::InvalidInput,
            "a virtual server sends no notifications: its events reach its host's event log, \
             and the host's channels send them",
        );
    };
    match request {
        NotifyRequest::List { after, limit } => {
            let last = match node.store.last_event_seq().await {
                Ok(last) => last,
                Err(e) => return internal(e),
            };
            let views = notifier.views(last);
            let (channels, next) =
                page_by_path(views, |v| v.name.as_str(), after.as_deref(), limit);
            AdminResponse::NotifyChannels { channels, next }
        }
        NotifyRequest::Add(spec) => add(node, notifier, session, *spec).await,
        NotifyRequest::Remove { name } => {
            if notifier.config_names().contains(&name) {
                return invalid(format!(
                    "channel {name:?} is defined in the server's config: remove it there"
                ));
            }
            match node.store.remove_notify_channel(&name).await {
                Ok(true) => {
                    notifier.forget(&name);
                    tracing::info!(user = %session.user, channel = %name, "notification channel removed");
                    AdminResponse::Done {
                        message: format!("notification channel {name} removed"),
                    }
                }
                Ok(false) => error(
                    ErrorKind::NotFound,
                    format!("no notification channel named {name:?}"),
                ),
                Err(e) => internal(e),
            }
        }
        NotifyRequest::Test { name } => {
            let Some(channel) = notifier.channel(&name) else {
                return error(
                    ErrorKind::NotFound,
                    format!("no notification channel named {name:?}"),
                );
            };
            match channel.test(&notifier.server, now_ms()).await {
                Ok(()) => AdminResponse::Done {
                    message: format!(
                        "test message accepted by {} ({})",
                        channel.target.describe(),
                        channel.target.kind_name()
                    ),
                },
                Err(e) => error(
                    ErrorKind::Unavailable,
                    format!("test of {name} failed: {e}"),
                ),
            }
        }
    }
}

/// Checks what an administrator asks for: the error names the option at fault.
fn check(spec: &NotifyChannelSpec, notifier: &Notifier) -> Result<(), String> {
    check_channel_name(&spec.name)?;
    if spec.filter.kinds.is_empty() {
        return Err("--kind: give at least one event kind".into());
    }
    match &spec.target {
        ChannelTarget::Email { to } => {
            if notifier.relay.is_none() {
                return Err(
                    "email channels send through the SMTP relay of the server's config, and \
                     it has none: add [notify.smtp] to it"
                        .into(),
                );
            }
            if to.is_empty() || to.len() > MAX_RECIPIENTS {
                return Err(format!("--to: give 1 to {MAX_RECIPIENTS} addresses"));
            }
            for address in to {
                check_email_address(address).map_err(|e| format!("--to: {e}"))?;
            }
            if spec.secret.is_some() || spec.ca_pem.is_some() {
                return Err("an email channel takes no secret and no CA".into());
            }
        }
        ChannelTarget::Webhook { url } => {
            check_webhook_url(url).map_err(|e| format!("--url: {e}"))?;
            match &spec.secret {
                Some(secret) if !secret.0.is_empty() => {}
                _ => return Err("--secret-file: a webhook needs a shared secret".into()),
            }
            if let Some(pem) = &spec.ca_pem {
                super::certs_of(pem).map_err(|e| format!("--ca-file: {e}"))?;
            }
        }
    }
    Ok(())
}

async fn add(
    node: &Arc<Node>,
    notifier: &Notifier,
    session: &Session,
    spec: NotifyChannelSpec,
) -> AdminResponse {
    if let Err(e) = check(&spec, notifier) {
        return invalid(e);
    }
    let secret = spec.secret.map(|s| s.0);
    let sealed = match &secret {
        Some(plain) => match node.secrets.seal_for(SECRET_PURPOSE, plain) {
            Ok(sealed) => Some(sealed),
            Err(e) => return internal(e),
        },
        None => None,
    };
    let stored = StoredChannel {
        name: spec.name.clone(),
        target: spec.target,
        filter: spec.filter,
        secret: sealed,
        ca_pem: spec.ca_pem,
        created: now_ms(),
        created_by: session.user.clone(),
    };
    let cursor = match node
        .store
        .add_notify_channel(stored.clone(), notifier.config_names())
        .await
    {
        Ok(cursor) => cursor,
        Err(e) if e.is_permanent() => return error(ErrorKind::AlreadyExists, e.to_string()),
        Err(e) => return internal(e),
    };
    let channel = notifier.stored_channel(node, &stored, secret);
    notifier.spawn(channel, cursor);
    tracing::info!(
        user = %session.user,
        channel = %stored.name,
        kind = stored.target.kind_name(),
        "notification channel added"
    );
    debug_assert!(notifier.names().contains(&stored.name));
    AdminResponse::Done {
        message: format!(
            "notification channel {} added: {} to {}, {}; it starts with the events after {}",
            stored.name,
            stored.target.kind_name(),
            stored.target.describe(),
            stored.filter.describe(),
            cursor.after
        ),
    }
}
