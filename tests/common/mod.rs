//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::time::Duration;

use canopy::cli::client::AdminClient;
use canopy::model::{Event, EventKind};
use canopy::wire::msg::{AdminRequest, AdminResponse};

/// How long any test waits for the tree to settle before it fails.
pub const LIMIT: Duration = Duration::from_secs(30);

/// The server's newest 1000 events, oldest first.
pub async fn events(client: &AdminClient) -> Vec<Event> {
    match client
        .call(AdminRequest::EventList {
            after: None,
            limit: 1000,
        })
        .await
        .unwrap()
    {
        AdminResponse::Events(events) => events,
        other => panic!("unexpected {other:?}"),
    }
}

/// Waits until `check` holds, polling; fails the test after `LIMIT`.
pub async fn until<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the server's event log has an event of `kind` whose message contains `text`.
pub async fn wait_event(client: &AdminClient, kind: EventKind, text: &str) -> Event {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let all = events(client).await;
        if let Some(e) = all
            .iter()
            .find(|e| e.kind == kind && e.message.contains(text))
        {
            return e.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {kind:?} event with {text:?} in {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
