//! Replies to messages (request-reply): what a handler answered for one message, stored with
//! the ack of that message and kept for [`REPLY_RETENTION_MS`], and the wait of a producer for
//! it. Backends store and sweep replies; waiting is the same for both: register a wake-up,
//! look, and sleep until the reply's commit (this host's, or another host's through
//! LISTEN/NOTIFY) or the deadline.

use std::time::Duration;

use super::{Result, Store};

/// How long a reply is kept after it is committed, for `GET /v1/replies/{id}`.
pub const REPLY_RETENTION_MS: u64 = 60 * 60 * 1000;

/// The longest a producer may wait for a reply on one request.
pub const MAX_REPLY_WAIT: Duration = Duration::from_secs(60);

/// A reply a handler gave to one message of its batch; committed only with that message's ack.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReply {
    /// The message answered.
    pub message_id: String,
    pub body: Vec<u8>,
    pub attributes: Vec<(String, String)>,
}

/// A committed reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub message_id: String,
    /// The queue the answered message was on.
    pub queue: String,
    pub body: Vec<u8>,
    pub attributes: Vec<(String, String)>,
    pub replied_at_ms: u64,
}

impl Store {
    /// The reply to `message_id`, if one was committed and has not expired.
    pub async fn reply(&self, message_id: &str) -> Result<Option<Reply>> {
        self.backend.get_reply(message_id).await
    }

    /// Waits up to `timeout` for the reply to `message_id`; `None` when none came in time.
    ///
    /// The wake-up is registered before the first look, so a reply committed between the look
    /// and the wait still wakes it; every wake-up looks again (a wake-up can also mean "commits
    /// may have been missed", after a lost database connection).
    pub async fn wait_reply(&self, message_id: &str, timeout: Duration) -> Result<Option<Reply>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let waiter = self.events().reply_waiter(message_id);
        loop {
            let woken = waiter.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if let Some(reply) = self.reply(message_id).await? {
                return Ok(Some(reply));
            }
            if tokio::time::timeout_at(deadline, woken).await.is_err() {
                // One last look: the reply may have come with the deadline.
                return self.reply(message_id).await;
            }
        }
    }
}
