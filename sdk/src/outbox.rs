//! Sending messages to other queues: [`send`], [`send_json`] and the [`Outgoing`] builder.
//! (Topics and replies go through the same outbox: see [`publish`](crate::publish) and
//! [`reply`](crate::reply).)
//!
//! On WebAssembly every send goes to the host's outbox, which buffers it and commits it together
//! with the batch's acknowledgement, only if the handler returns `Ok`. On native targets sends are
//! recorded for [`testing`](crate::testing) instead.

use std::time::Duration;

use serde::Serialize;

use crate::Error;

/// The highest priority a message may have (0 is the lowest); the host refuses more.
pub const MAX_PRIORITY: u8 = 9;
/// The priority of a message that names none.
pub const DEFAULT_PRIORITY: u8 = 4;
/// The longest group key, in bytes.
pub const MAX_GROUP_BYTES: usize = 128;

/// A message to send to another queue.
///
/// ```
/// use std::time::Duration;
/// use sluice_sdk::Outgoing;
///
/// # fn main() -> Result<(), sluice_sdk::Error> {
/// Outgoing::new("emails")
///     .json(&serde_json::json!({"to": "ada@example.com"}))?
///     .attribute("tenant", "acme")
///     .delay(Duration::from_secs(60))
///     .priority(7)
///     .group("ada@example.com")
///     .send()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub(crate) queue: String,
    pub(crate) body: Vec<u8>,
    pub(crate) attributes: Vec<(String, String)>,
    pub(crate) delay: Option<Duration>,
    pub(crate) priority: Option<u8>,
    pub(crate) group: Option<String>,
}

impl Outgoing {
    /// A message with an empty body for `queue`.
    ///
    /// ```
    /// let msg = sluice_sdk::Outgoing::new("audit");
    /// ```
    pub fn new(queue: impl Into<String>) -> Self {
        Outgoing {
            queue: queue.into(),
            body: Vec::new(),
            attributes: Vec::new(),
            delay: None,
            priority: None,
            group: None,
        }
    }

    /// Sets the raw body (a `&str`, `String`, `&[u8]` or `Vec<u8>`).
    ///
    /// ```
    /// sluice_sdk::Outgoing::new("audit").body("hello");
    /// sluice_sdk::Outgoing::new("audit").body(vec![0u8, 1, 2]);
    /// ```
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the body to `value` serialized as JSON.
    ///
    /// ```
    /// # fn main() -> Result<(), sluice_sdk::Error> {
    /// let msg = sluice_sdk::Outgoing::new("audit").json(&[1, 2])?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Result<Self, Error> {
        self.body = serde_json::to_vec(value)?;
        Ok(self)
    }

    /// Adds an attribute.
    ///
    /// ```
    /// let msg = sluice_sdk::Outgoing::new("audit").attribute("tenant", "acme");
    /// ```
    pub fn attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.push((name.into(), value.into()));
        self
    }

    /// Keeps the message invisible for `delay` after it is committed (whole milliseconds, capped
    /// at `u32::MAX`).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let msg = sluice_sdk::Outgoing::new("audit").delay(Duration::from_secs(1));
    /// ```
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Sets the priority, 0 (lowest) to 9 (highest); without it the message gets the default,
    /// 4. A consumer's batch takes higher priorities first. Anything above 9 makes
    /// [`send`](Outgoing::send) fail.
    ///
    /// ```
    /// let msg = sluice_sdk::Outgoing::new("alerts").priority(9);
    /// ```
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Puts the message in an ordered group (1 to 128 bytes, no control characters): the
    /// messages of one group are delivered one at a time, in the order they were committed.
    ///
    /// ```
    /// let msg = sluice_sdk::Outgoing::new("payments").group("account-42");
    /// ```
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Sends the message. It fails when the queue does not exist, the priority or group is
    /// invalid, the message is too large or the invocation's outbox limits are reached; the
    /// message is committed only if the handler returns `Ok`.
    ///
    /// ```
    /// # fn main() -> Result<(), sluice_sdk::Error> {
    /// sluice_sdk::Outgoing::new("audit").body("seen").send()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn send(self) -> Result<(), Error> {
        deliver(self)
    }
}

/// Sends `body` (a `&str`, `String`, `&[u8]` or `Vec<u8>`) to `queue`. See [`Outgoing`] for
/// attributes and delays.
///
/// ```
/// # fn main() -> Result<(), sluice_sdk::Error> {
/// sluice_sdk::send("audit", "order 42 seen")?;
/// # Ok(())
/// # }
/// ```
pub fn send(queue: impl Into<String>, body: impl Into<Vec<u8>>) -> Result<(), Error> {
    Outgoing::new(queue).body(body).send()
}

/// Sends `value`, serialized as JSON, to `queue`.
///
/// ```
/// # fn main() -> Result<(), sluice_sdk::Error> {
/// sluice_sdk::send_json("audit", &serde_json::json!({"order": 42}))?;
/// # Ok(())
/// # }
/// ```
pub fn send_json<T: Serialize + ?Sized>(queue: impl Into<String>, value: &T) -> Result<(), Error> {
    Outgoing::new(queue).json(value)?.send()
}

#[cfg(target_arch = "wasm32")]
fn deliver(outgoing: Outgoing) -> Result<(), Error> {
    crate::wit::send(outgoing)
}

#[cfg(not(target_arch = "wasm32"))]
fn deliver(outgoing: Outgoing) -> Result<(), Error> {
    crate::testing::record(outgoing)
}
