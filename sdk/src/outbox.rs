//! Sending messages to other queues: [`send`], [`send_json`] and the [`Outgoing`] builder.
//!
//! On WebAssembly every send goes to the host's outbox, which buffers it and commits it together
//! with the batch's acknowledgement, only if the handler returns `Ok`. On native targets sends are
//! recorded for [`testing`](crate::testing) instead.

use std::time::Duration;

use serde::Serialize;

use crate::Error;

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

    /// Sends the message. It fails when the queue does not exist, the message is too large or the
    /// invocation's send limits are reached; the message is committed only if the handler
    /// returns `Ok`.
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
