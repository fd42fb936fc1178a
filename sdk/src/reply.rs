//! Answering requests: [`reply`], [`reply_json`] and the [`Reply`] builder.
//!
//! A producer that enqueues with `Sluice-Reply-Timeout-Ms` waits for the handler's reply to its
//! message. On WebAssembly the reply goes to the host's outbox and is committed only with the
//! acknowledgement of the message it answers: if the handler fails the batch, or retries or
//! dead-letters that message, the reply is discarded (the producer then gets its timeout, or the
//! reply of a later attempt). On native targets replies are recorded for
//! [`testing`](crate::testing) instead.

use serde::Serialize;

use crate::{Error, Message};

/// The answer to one message of the batch, for the producer waiting on it. Taking the
/// [`Message`] itself means the reply always names a message of the batch.
///
/// ```
/// use sluice_sdk::{testing, Batch, Error, Outcome, Reply};
///
/// fn handle(batch: Batch) -> Result<Outcome, Error> {
///     for msg in &batch {
///         Reply::to(msg)
///             .json(&serde_json::json!({"ok": true}))?
///             .attribute("content-type", "application/json")
///             .send()?;
///     }
///     Ok(Outcome::ack_all())
/// }
///
/// let report = testing::run(handle, [testing::message("ping")]);
/// assert_eq!(report.reply_to("msg-1").unwrap().attribute("content-type"), Some("application/json"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub(crate) message_id: String,
    pub(crate) body: Vec<u8>,
    pub(crate) attributes: Vec<(String, String)>,
}

impl Reply {
    /// An empty reply to `message`.
    ///
    /// ```
    /// # let msg = sluice_sdk::testing::message("ping").build();
    /// let reply = sluice_sdk::Reply::to(&msg);
    /// ```
    pub fn to(message: &Message) -> Self {
        Reply {
            message_id: message.id().to_owned(),
            body: Vec::new(),
            attributes: Vec::new(),
        }
    }

    /// Sets the raw body (a `&str`, `String`, `&[u8]` or `Vec<u8>`).
    ///
    /// ```
    /// # let msg = sluice_sdk::testing::message("ping").build();
    /// sluice_sdk::Reply::to(&msg).body("pong");
    /// ```
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the body to `value` serialized as JSON.
    ///
    /// ```
    /// # fn main() -> Result<(), sluice_sdk::Error> {
    /// # let msg = sluice_sdk::testing::message("ping").build();
    /// let reply = sluice_sdk::Reply::to(&msg).json(&serde_json::json!({"total": 12.5}))?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Result<Self, Error> {
        self.body = serde_json::to_vec(value)?;
        Ok(self)
    }

    /// Adds an attribute; the waiting producer gets it in the reply's `attributes`.
    ///
    /// ```
    /// # let msg = sluice_sdk::testing::message("ping").build();
    /// sluice_sdk::Reply::to(&msg).attribute("status", "done");
    /// ```
    pub fn attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.push((name.into(), value.into()));
        self
    }

    /// Hands the reply to the outbox. It fails when the message already has a reply in this
    /// invocation or the invocation's outbox limits are reached; it is committed only if the
    /// handler returns `Ok` and acknowledges the message.
    ///
    /// ```
    /// # fn main() -> Result<(), sluice_sdk::Error> {
    /// # let msg = sluice_sdk::testing::message("ping").build();
    /// sluice_sdk::Reply::to(&msg).body("pong").send()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn send(self) -> Result<(), Error> {
        deliver(self)
    }
}

/// Replies `body` (a `&str`, `String`, `&[u8]` or `Vec<u8>`) to `message`. See [`Reply`] for
/// attributes.
///
/// ```
/// use sluice_sdk::{testing, Batch, Error, Outcome};
///
/// fn handle(batch: Batch) -> Result<Outcome, Error> {
///     for msg in &batch {
///         sluice_sdk::reply(msg, msg.body_str()?.to_uppercase())?;
///     }
///     Ok(Outcome::ack_all())
/// }
///
/// let report = testing::run(handle, [testing::message("ping")]);
/// assert_eq!(report.committed_replies()[0].body_str().unwrap(), "PING");
/// ```
pub fn reply(message: &Message, body: impl Into<Vec<u8>>) -> Result<(), Error> {
    Reply::to(message).body(body).send()
}

/// Replies `value`, serialized as JSON, to `message`.
///
/// ```
/// # fn main() -> Result<(), sluice_sdk::Error> {
/// # let msg = sluice_sdk::testing::message("ping").build();
/// sluice_sdk::reply_json(&msg, &serde_json::json!({"pong": true}))?;
/// # Ok(())
/// # }
/// ```
pub fn reply_json<T: Serialize + ?Sized>(message: &Message, value: &T) -> Result<(), Error> {
    Reply::to(message).json(value)?.send()
}

#[cfg(target_arch = "wasm32")]
fn deliver(reply: Reply) -> Result<(), Error> {
    crate::wit::reply(reply)
}

#[cfg(not(target_arch = "wasm32"))]
fn deliver(reply: Reply) -> Result<(), Error> {
    crate::testing::record_reply(reply)
}
