//! Keeps the change log small (`sync::snapshot`): every `change_log.trim_every_s`, the
//! entries every registered child applied, and the oldest beyond `change_log.keep`, go.

use std::sync::Arc;

use crate::server::Node;

pub(in crate::server) async fn trim_loop(node: Arc<Node>) {
    let trim = node.config.change_log;
    let mut shutdown = node.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(trim.every) => {}
            _ = shutdown.changed() => return,
        }
        match node.store.trim_log(trim.keep).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                "{n} change(s) trimmed from the change log: every registered child applied \
                 them, or they were older than the newest change_log.keep ({})",
                trim.keep
            ),
            Err(e) => tracing::error!("cannot trim the change log: {e}"),
        }
    }
}
