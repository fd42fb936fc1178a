//! Publishing to topics: [`publish`], [`publish_json`] and the [`Publication`] builder.
//!
//! On WebAssembly every publication goes to the host's outbox, which buffers it and, only if the
//! handler returns `Ok`, commits it with the batch's acknowledgement: a copy goes to every
//! subscription of the topic whose filter matches its attributes. On native targets
//! publications are recorded for [`testing`](crate::testing) instead.

use serde::Serialize;

use crate::Error;

/// A message to publish to a topic.
///
/// ```
/// use sluice_sdk::Publication;
///
/// # fn main() -> Result<(), sluice_sdk::Error> {
/// Publication::new("orders")
///     .json(&serde_json::json!({"id": "o-1", "total": 25.0}))?
///     .attribute("kind", "created")
///     .publish()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    pub(crate) topic: String,
    pub(crate) body: Vec<u8>,
    pub(crate) attributes: Vec<(String, String)>,
}

impl Publication {
    /// A message with an empty body for `topic`.
    ///
    /// ```
    /// let msg = sluice_sdk::Publication::new("orders");
    /// ```
    pub fn new(topic: impl Into<String>) -> Self {
        Publication {
            topic: topic.into(),
            body: Vec::new(),
            attributes: Vec::new(),
        }
    }

    /// Sets the raw body (a `&str`, `String`, `&[u8]` or `Vec<u8>`).
    ///
    /// ```
    /// sluice_sdk::Publication::new("orders").body("created o-1");
    /// ```
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the body to `value` serialized as JSON.
    ///
    /// ```
    /// # fn main() -> Result<(), sluice_sdk::Error> {
    /// let msg = sluice_sdk::Publication::new("orders").json(&[1, 2])?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Result<Self, Error> {
        self.body = serde_json::to_vec(value)?;
        Ok(self)
    }

    /// Adds an attribute; subscriptions filter on attributes.
    ///
    /// ```
    /// let msg = sluice_sdk::Publication::new("orders").attribute("kind", "created");
    /// ```
    pub fn attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.push((name.into(), value.into()));
        self
    }

    /// Publishes the message. It fails when the topic does not exist or the invocation's outbox
    /// limits are reached; the message is committed only if the handler returns `Ok`.
    ///
    /// ```
    /// # fn main() -> Result<(), sluice_sdk::Error> {
    /// sluice_sdk::Publication::new("orders").body("created o-1").publish()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn publish(self) -> Result<(), Error> {
        deliver(self)
    }
}

/// Publishes `body` (a `&str`, `String`, `&[u8]` or `Vec<u8>`) to `topic`. See [`Publication`]
/// for attributes.
///
/// ```
/// # fn main() -> Result<(), sluice_sdk::Error> {
/// sluice_sdk::publish("orders", "created o-1")?;
/// # Ok(())
/// # }
/// ```
pub fn publish(topic: impl Into<String>, body: impl Into<Vec<u8>>) -> Result<(), Error> {
    Publication::new(topic).body(body).publish()
}

/// Publishes `value`, serialized as JSON, to `topic`.
///
/// ```
/// # fn main() -> Result<(), sluice_sdk::Error> {
/// sluice_sdk::publish_json("orders", &serde_json::json!({"id": "o-1"}))?;
/// # Ok(())
/// # }
/// ```
pub fn publish_json<T: Serialize + ?Sized>(
    topic: impl Into<String>,
    value: &T,
) -> Result<(), Error> {
    Publication::new(topic).json(value)?.publish()
}

#[cfg(target_arch = "wasm32")]
fn deliver(publication: Publication) -> Result<(), Error> {
    crate::wit::publish(publication)
}

#[cfg(not(target_arch = "wasm32"))]
fn deliver(publication: Publication) -> Result<(), Error> {
    crate::testing::record_publication(publication)
}
