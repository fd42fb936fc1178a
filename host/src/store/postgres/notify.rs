//! Wake-ups for the other hosts, sent after commit by one task per host that coalesces them.
//!
//! A `NOTIFY` inside a transaction makes PostgreSQL serialize the commits of every notifying
//! transaction, fsync included: the database-wide notify lock is held until the commit record
//! is flushed. Measured with `pgbench -c 16` on a one-row insert: about 1,740 transactions a
//! second with the `NOTIFY` inside, 5,400–5,900 without it. So the writes commit without one,
//! and this task sends the wake-ups afterwards: one statement for every queue woken while the
//! previous one was in flight, in a transaction that commits without waiting for its fsync (it
//! writes nothing but the notification).
//!
//! The caller waits until its wake-ups are sent, so whoever is told a write is kept (a
//! producer's 2xx) is told after the other hosts were woken for it. A host that dies between
//! its commit and the send leaves the write durable but unannounced: its caller got no answer
//! and retries, and the retry's own wake-up covers it; a restarted host leases at once anyway.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, Config, NoTls, Statement};

use super::sql;

/// How long a send may take before its connection is given up (a write already committed
/// does not wait on an unreachable database for longer).
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends other hosts the queues this host's commits made work for.
pub struct Notifier {
    requests: mpsc::UnboundedSender<Request>,
}

struct Request {
    queues: Vec<String>,
    sent: oneshot::Sender<()>,
}

impl Notifier {
    /// Starts the sending task; it ends when the notifier is dropped.
    pub fn spawn(config: Config) -> (Notifier, JoinHandle<()>) {
        let (requests, received) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(config, received));
        (Notifier { requests }, task)
    }

    /// Wakes `queues` on every host listening; returns once the wake-ups are sent, or once
    /// sending failed (logged: a host that missed it reloads everything when its listening
    /// connection comes back, and a database this host cannot reach is one the others'
    /// listeners lost too).
    pub async fn wake(&self, queues: impl IntoIterator<Item = String>) {
        let queues: Vec<String> = queues.into_iter().collect();
        if queues.is_empty() {
            return;
        }
        let (sent, done) = oneshot::channel();
        if self.requests.send(Request { queues, sent }).is_ok() {
            let _ = done.await;
        }
    }
}

async fn run(config: Config, mut received: mpsc::UnboundedReceiver<Request>) {
    let mut connection: Option<(Client, Statement)> = None;
    let mut waiting = Vec::new();
    while received.recv_many(&mut waiting, usize::MAX).await > 0 {
        let mut queues: Vec<&str> = waiting
            .iter()
            .flat_map(|r| r.queues.iter().map(String::as_str))
            .collect();
        queues.sort_unstable();
        queues.dedup();
        let sent = tokio::time::timeout(SEND_TIMEOUT, send(&config, &mut connection, &queues));
        let failure = match sent.await {
            Ok(Ok(())) => None,
            Ok(Err(err)) => Some(err.to_string()),
            Err(_) => Some(format!("no answer within {SEND_TIMEOUT:?}")),
        };
        if let Some(err) = failure {
            tracing::warn!(%err, ?queues, "cannot wake the other hosts");
            connection = None;
        }
        for request in waiting.drain(..) {
            let _ = request.sent.send(());
        }
    }
}

/// Sends on the notifier's own connection (opened when missing). Not a pooled one: a caller
/// waits for its wake-up while it may still hold a pooled connection, so taking one here could
/// wait on them all.
async fn send(
    config: &Config,
    connection: &mut Option<(Client, Statement)>,
    queues: &[&str],
) -> Result<(), tokio_postgres::Error> {
    let (client, statement) = match connection {
        Some((client, statement)) if !client.is_closed() => (client, statement),
        _ => {
            let (client, driver) = config.connect(NoTls).await?;
            tokio::spawn(async move {
                if let Err(err) = driver.await {
                    tracing::warn!(%err, "the PostgreSQL connection for wake-ups failed");
                }
            });
            let statement = client.prepare(sql::NOTIFY_WAKE_ALL).await?;
            let (client, statement) = connection.insert((client, statement));
            (client, statement)
        }
    };
    client.execute(&*statement, &[&queues]).await?;
    Ok(())
}
