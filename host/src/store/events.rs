//! What a backend tells the rest of the host after a commit: wake-ups for consumers of a queue,
//! and catalog changes (queues, functions, triggers, tokens) so caches and trigger loops follow.
//! Fed by this host's commits and, with PostgreSQL, by other hosts' commits through
//! LISTEN/NOTIFY, so every host sees the same changes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tokio::sync::{Notify, broadcast};

/// A change to the catalog, named by what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogChange {
    /// A queue was created, changed or deleted.
    Queue(String),
    /// A function, its active version or its trigger changed (or it was deleted).
    Function(String),
    /// Tokens were added or revoked.
    Tokens,
    /// A schedule was put or deleted.
    Schedules,
    /// A topic or subscription was created, changed or deleted.
    Topics,
    /// Changes may have been missed (a lost database connection): reload everything.
    Everything,
}

/// Wake-ups per queue, the set of queue names, which function consumes each queue, the set of
/// topic names, and a stream of catalog changes.
pub struct Events {
    notifiers: Mutex<HashMap<String, Arc<Notify>>>,
    /// Producers waiting for a reply, by message id; an entry lives while someone waits.
    replies: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
    queues: RwLock<HashSet<String>>,
    consumers: RwLock<Consumers>,
    topics: RwLock<Topics>,
    catalog: broadcast::Sender<CatalogChange>,
}

/// Queue → the function whose trigger consumes it, loaded on first use and dropped by any
/// function change; the generation tells a load that raced with a change not to keep its
/// (possibly stale) answer.
#[derive(Default)]
struct Consumers {
    generation: u64,
    by_queue: Option<Arc<HashMap<String, String>>>,
}

/// The names of the topics, loaded on first use and dropped by any topic change, with a
/// generation like [`Consumers`].
#[derive(Default)]
struct Topics {
    generation: u64,
    names: Option<Arc<HashSet<String>>>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            notifiers: Mutex::default(),
            replies: Arc::default(),
            queues: RwLock::default(),
            consumers: RwLock::default(),
            topics: RwLock::default(),
            catalog: broadcast::channel(1024).0,
        }
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

impl Events {
    /// The wake-up of `queue`'s consumers.
    pub fn notifier(&self, queue: &str) -> Arc<Notify> {
        let mut map = self
            .notifiers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.entry(queue.to_owned()).or_default().clone()
    }

    /// Wakes every waiting consumer of `queue`, and leaves a permit for one that is between
    /// checking the queue and waiting, so a wake-up is never lost.
    pub fn notify(&self, queue: &str) {
        let notify = self.notifier(queue);
        notify.notify_waiters();
        notify.notify_one();
    }

    /// Wakes the consumers of every queue (after a lost connection: commits may have been
    /// missed).
    pub fn notify_all(&self) {
        let all: Vec<Arc<Notify>> = self
            .notifiers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for notify in all {
            notify.notify_waiters();
            notify.notify_one();
        }
        let waiting: Vec<Arc<Notify>> = self
            .replies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for notify in waiting {
            notify.notify_waiters();
        }
    }

    /// A wake-up for the reply to `message_id`, for as long as the returned waiter lives.
    pub fn reply_waiter(&self, message_id: &str) -> ReplyWaiter {
        let notify = self
            .replies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(message_id.to_owned())
            .or_default()
            .clone();
        ReplyWaiter {
            replies: self.replies.clone(),
            message_id: message_id.to_owned(),
            notify,
        }
    }

    /// A reply to `message_id` was committed: wake whoever waits for it on this host.
    pub fn reply_committed(&self, message_id: &str) {
        let waiting = self
            .replies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(message_id)
            .cloned();
        if let Some(notify) = waiting {
            notify.notify_waiters();
        }
    }

    pub fn queue_known(&self, name: &str) -> bool {
        self.queues
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(name)
    }

    pub fn set_queues(&self, names: HashSet<String>) {
        *self.queues.write().unwrap_or_else(PoisonError::into_inner) = names;
    }

    pub fn queue_created(&self, name: &str) {
        self.queues
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned());
    }

    pub fn queue_deleted(&self, name: &str) {
        self.queues
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }

    /// The consumers of every queue when known, else the generation a load should pass to
    /// [`Events::set_consumers`].
    pub fn consumers(&self) -> Result<Arc<HashMap<String, String>>, u64> {
        let consumers = self
            .consumers
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        consumers.by_queue.clone().ok_or(consumers.generation)
    }

    /// Keeps a freshly loaded map of consumers, unless a function changed since `generation`.
    pub fn set_consumers(&self, generation: u64, by_queue: Arc<HashMap<String, String>>) {
        let mut consumers = self
            .consumers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if consumers.generation == generation {
            consumers.by_queue = Some(by_queue);
        }
    }

    /// The names of every topic when known, else the generation a load should pass to
    /// [`Events::set_topics`].
    pub fn topics(&self) -> Result<Arc<HashSet<String>>, u64> {
        let topics = self.topics.read().unwrap_or_else(PoisonError::into_inner);
        topics.names.clone().ok_or(topics.generation)
    }

    /// Keeps a freshly loaded set of topic names, unless a topic changed since `generation`.
    pub fn set_topics(&self, generation: u64, names: Arc<HashSet<String>>) {
        let mut topics = self.topics.write().unwrap_or_else(PoisonError::into_inner);
        if topics.generation == generation {
            topics.names = Some(names);
        }
    }

    /// Announces a catalog change to every subscriber.
    pub fn catalog_changed(&self, change: CatalogChange) {
        if matches!(change, CatalogChange::Topics | CatalogChange::Everything) {
            let mut topics = self.topics.write().unwrap_or_else(PoisonError::into_inner);
            topics.generation += 1;
            topics.names = None;
        }
        if matches!(
            change,
            CatalogChange::Function(_) | CatalogChange::Everything
        ) {
            let mut consumers = self
                .consumers
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            consumers.generation += 1;
            consumers.by_queue = None;
        }
        // No subscribers is fine: nothing caches that part of the catalog yet.
        let _ = self.catalog.send(change);
    }

    /// Catalog changes from now on. A subscriber that falls behind gets `Lagged` and should
    /// reload everything.
    pub fn subscribe(&self) -> broadcast::Receiver<CatalogChange> {
        self.catalog.subscribe()
    }
}

/// A registered wait for one reply; dropping the last waiter for an id forgets the id.
pub struct ReplyWaiter {
    replies: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
    message_id: String,
    notify: Arc<Notify>,
}

impl ReplyWaiter {
    /// Completes at the next wake-up for this reply (enable it before looking for the reply).
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

impl Drop for ReplyWaiter {
    fn drop(&mut self) {
        let mut replies = self.replies.lock().unwrap_or_else(PoisonError::into_inner);
        // The map's reference and this one: nobody else waits for this reply.
        if Arc::strong_count(&self.notify) <= 2 {
            replies.remove(&self.message_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_committed_reply_wakes_its_waiters_and_the_last_one_out_forgets_it() {
        let events = Events::default();
        let first = events.reply_waiter("7");
        let second = events.reply_waiter("7");
        {
            let woken = first.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            events.reply_committed("8");
            events.reply_committed("7");
            tokio::time::timeout(std::time::Duration::from_secs(5), woken)
                .await
                .expect("the reply's commit wakes its waiter");
        }
        drop(first);
        assert!(events.replies.lock().unwrap().contains_key("7"));
        drop(second);
        assert!(events.replies.lock().unwrap().is_empty());
    }
}
