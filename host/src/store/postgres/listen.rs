//! Wake-ups and catalog changes from every host: one dedicated connection LISTENs on
//! `sluice_wake` (payload: a queue), `sluice_catalog` (payload: what changed) and
//! `sluice_reply` (payload: the id of a message just answered) and turns
//! each NOTIFY into the same [`Events`] this host's own commits fire. When the connection is
//! lost it reconnects with backoff and, since notifications may have been missed meanwhile,
//! reloads the queue names and announces that everything may have changed.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};

use super::super::{CatalogChange, Events};
use super::sql;

const RECONNECT_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// Payloads of `sluice_catalog`.
pub fn queue_created(name: &str) -> String {
    format!("queue+:{name}")
}
pub fn queue_deleted(name: &str) -> String {
    format!("queue-:{name}")
}
pub fn queue_changed(name: &str) -> String {
    format!("queue:{name}")
}
pub fn function_changed(name: &str) -> String {
    format!("function:{name}")
}
pub const TOKENS_CHANGED: &str = "tokens";
pub const SCHEDULES_CHANGED: &str = "schedules";
pub const TOPICS_CHANGED: &str = "topics";

/// Applies one `sluice_catalog` payload to `events`.
pub fn apply_catalog(events: &Events, payload: &str) {
    if let Some(name) = payload.strip_prefix("queue+:") {
        events.queue_created(name);
        events.catalog_changed(CatalogChange::Queue(name.to_owned()));
    } else if let Some(name) = payload.strip_prefix("queue-:") {
        events.queue_deleted(name);
        events.catalog_changed(CatalogChange::Queue(name.to_owned()));
    } else if let Some(name) = payload.strip_prefix("queue:") {
        events.catalog_changed(CatalogChange::Queue(name.to_owned()));
    } else if let Some(name) = payload.strip_prefix("function:") {
        events.catalog_changed(CatalogChange::Function(name.to_owned()));
    } else if payload == TOKENS_CHANGED {
        events.catalog_changed(CatalogChange::Tokens);
    } else if payload == SCHEDULES_CHANGED {
        events.catalog_changed(CatalogChange::Schedules);
    } else if payload == TOPICS_CHANGED {
        events.catalog_changed(CatalogChange::Topics);
    } else {
        tracing::warn!(%payload, "unknown catalog notification; reloading everything");
        events.catalog_changed(CatalogChange::Everything);
    }
}

/// Listens until the task is aborted (when the backend is dropped).
pub async fn run(config: tokio_postgres::Config, events: Arc<Events>) {
    let mut backoff = RECONNECT_FIRST;
    let mut first = true;
    loop {
        match listen_once(&config, &events, &mut first, &mut backoff).await {
            Ok(()) => tracing::warn!("lost the PostgreSQL notification connection; reconnecting"),
            Err(err) => {
                tracing::warn!(%err, ?backoff, "cannot listen for PostgreSQL notifications; retrying")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RECONNECT_MAX);
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    events: &Events,
    first: &mut bool,
    backoff: &mut Duration,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (sender, mut received) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if sender.send(n).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(%err, "PostgreSQL notification connection failed");
                    return;
                }
            }
        }
    });
    let listening = client
        .batch_execute("LISTEN sluice_wake; LISTEN sluice_catalog; LISTEN sluice_reply")
        .await;
    if let Err(err) = listening {
        driver.abort();
        return Err(err);
    }
    // Listening from here on; whatever committed while we were not is caught up by reloading.
    let names = client.query(sql::QUEUE_NAMES, &[]).await;
    match names {
        Ok(rows) => events.set_queues(rows.iter().map(|r| r.get(0)).collect()),
        Err(err) => {
            driver.abort();
            return Err(err);
        }
    }
    if !std::mem::take(first) {
        events.catalog_changed(CatalogChange::Everything);
        events.notify_all();
    }
    *backoff = RECONNECT_FIRST;
    tracing::debug!("listening for PostgreSQL notifications");
    while let Some(notification) = received.recv().await {
        match notification.channel() {
            "sluice_wake" => events.notify(notification.payload()),
            "sluice_catalog" => apply_catalog(events, notification.payload()),
            "sluice_reply" => events.reply_committed(notification.payload()),
            _ => {}
        }
    }
    drop(client);
    Ok(())
}
