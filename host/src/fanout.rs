//! Topic fan-out catch-up: moves every subscription that is behind its topic (one that
//! started at `earliest` or at a time, or one another host left half-way) through the topic's
//! history, one chunk per transaction, until it has caught up and publishing copies into it
//! directly. Runs on every host; it wakes on topic changes from any host, never on a timer
//! except to retry after an error.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::store::{self, CatalogChange, Store};

/// How long to wait before trying again after the store failed (a full queue, a lost
/// connection).
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

/// Catches up lagging subscriptions until `shutdown`.
pub async fn run(store: Store, shutdown: CancellationToken) {
    let mut changes = store.events().subscribe();
    loop {
        let retry = match catch_up_all(&store, &shutdown).await {
            Ok(()) => None,
            Err(err) => {
                tracing::warn!(error = %err, "topics: cannot catch a subscription up; retrying");
                Some(tokio::time::sleep(RETRY_AFTER_ERROR))
            }
        };
        let retry = async {
            match retry {
                Some(sleep) => sleep.await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(retry);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = &mut retry => break,
                change = changes.recv() => match change {
                    Ok(CatalogChange::Topics | CatalogChange::Everything)
                    | Err(RecvError::Lagged(_)) => break,
                    Ok(_) => {}
                    Err(RecvError::Closed) => return,
                },
            }
        }
    }
}

/// Catches every lagging subscription up, chunk by chunk.
async fn catch_up_all(store: &Store, shutdown: &CancellationToken) -> store::Result<()> {
    for (topic, queue) in store.lagging_subscriptions().await? {
        while !shutdown.is_cancelled() {
            match store.catch_up(&topic, &queue).await {
                Ok(true) => break,
                Ok(false) => {}
                // Deleted meanwhile: nothing left to do for it.
                Err(store::Error::TopicNotFound(_)) => break,
                Err(err) => return Err(err),
            }
        }
        tracing::debug!(%topic, %queue, "topics: subscription caught up");
    }
    Ok(())
}
