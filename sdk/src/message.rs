//! The messages a handler receives: [`Message`] and the [`Batch`] that holds them.

use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;

use crate::Error;

/// One message delivered to a handler.
///
/// On WebAssembly the host builds these; in native tests [`testing::message`](crate::testing::message)
/// does.
///
/// ```
/// # use sluice_sdk::testing;
/// let msg = testing::message(r#"{"sku": "A-1"}"#).id("m-1").attribute("tenant", "acme").build();
/// assert_eq!(msg.id(), "m-1");
/// assert_eq!(msg.body_str().unwrap(), r#"{"sku": "A-1"}"#);
/// assert_eq!(msg.attribute("tenant"), Some("acme"));
/// assert_eq!(msg.attempt(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub(crate) id: String,
    pub(crate) queue: String,
    pub(crate) body: Vec<u8>,
    pub(crate) attributes: Vec<(String, String)>,
    pub(crate) attempt: u32,
    pub(crate) enqueued_at_ms: u64,
    pub(crate) priority: u8,
    pub(crate) group: Option<String>,
}

impl Message {
    /// The message's id, unique within the host and stable across redeliveries.
    ///
    /// ```
    /// # let msg = sluice_sdk::testing::message("x").id("m-7").build();
    /// assert_eq!(msg.id(), "m-7");
    /// ```
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The queue the message was leased from.
    ///
    /// ```
    /// # let msg = sluice_sdk::testing::message("x").queue("orders").build();
    /// assert_eq!(msg.queue(), "orders");
    /// ```
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The raw body, exactly as the producer sent it.
    ///
    /// ```
    /// # let msg = sluice_sdk::testing::message(vec![1, 2, 3]).build();
    /// assert_eq!(msg.body(), &[1, 2, 3]);
    /// ```
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as text; an error if it is not UTF-8.
    ///
    /// ```
    /// # use sluice_sdk::testing;
    /// assert_eq!(testing::message("héllo").build().body_str().unwrap(), "héllo");
    /// assert!(testing::message(vec![0xff]).build().body_str().is_err());
    /// ```
    pub fn body_str(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.body)
            .map_err(|e| Error::new(format!("body is not valid UTF-8: {e}")))
    }

    /// The body parsed as JSON into `T`; an error (with serde's reason) if it does not parse.
    ///
    /// ```
    /// # use sluice_sdk::testing;
    /// #[derive(Debug, serde::Deserialize)]
    /// struct Order { id: String, amount: f64 }
    ///
    /// let order: Order = testing::message(r#"{"id": "o-1", "amount": 12.5}"#).build().json().unwrap();
    /// assert_eq!((order.id.as_str(), order.amount), ("o-1", 12.5));
    ///
    /// let error = testing::message("nope").build().json::<Order>().unwrap_err();
    /// assert!(error.message().starts_with("invalid JSON body: "));
    /// ```
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::new(format!("invalid JSON body: {e}")))
    }

    /// The value of the first attribute called `name`, if any.
    ///
    /// ```
    /// # let msg = sluice_sdk::testing::message("x").attribute("tenant", "acme").build();
    /// assert_eq!(msg.attribute("tenant"), Some("acme"));
    /// assert_eq!(msg.attribute("region"), None);
    /// ```
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// All attributes as `(name, value)`, in the order the producer gave them.
    ///
    /// ```
    /// # let msg = sluice_sdk::testing::message("x").attribute("a", "1").attribute("b", "2").build();
    /// let all: Vec<_> = msg.attributes().collect();
    /// assert_eq!(all, [("a", "1"), ("b", "2")]);
    /// ```
    pub fn attributes(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.attributes
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// How many times this message has been delivered, this delivery included (1 on the first).
    ///
    /// ```
    /// # let msg = sluice_sdk::testing::message("x").attempt(3).build();
    /// assert_eq!(msg.attempt(), 3);
    /// ```
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// When the producer's enqueue was committed.
    ///
    /// ```
    /// # use std::time::{Duration, UNIX_EPOCH};
    /// let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_000);
    /// let msg = sluice_sdk::testing::message("x").enqueued_at(at).build();
    /// assert_eq!(msg.enqueued_at(), at);
    /// ```
    pub fn enqueued_at(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(self.enqueued_at_ms)
    }

    /// When the producer's enqueue was committed, in milliseconds since the Unix epoch.
    ///
    /// ```
    /// # use std::time::{Duration, UNIX_EPOCH};
    /// # let msg = sluice_sdk::testing::message("x").enqueued_at(UNIX_EPOCH + Duration::from_millis(5)).build();
    /// assert_eq!(msg.enqueued_at_ms(), 5);
    /// ```
    pub fn enqueued_at_ms(&self) -> u64 {
        self.enqueued_at_ms
    }

    /// The message's priority, 0 (lowest) to 9 (highest); 4 unless the producer gave one.
    ///
    /// ```
    /// # use sluice_sdk::testing;
    /// assert_eq!(testing::message("x").build().priority(), 4);
    /// assert_eq!(testing::message("x").priority(9).build().priority(), 9);
    /// ```
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// The ordered group the message belongs to, if any: the host delivers the messages of one
    /// group one at a time, in enqueue order.
    ///
    /// ```
    /// # use sluice_sdk::testing;
    /// assert_eq!(testing::message("x").build().group(), None);
    /// assert_eq!(testing::message("x").group("customer-7").build().group(), Some("customer-7"));
    /// ```
    pub fn group(&self) -> Option<&str> {
        self.group.as_deref()
    }
}

/// The messages of one invocation, in delivery order.
///
/// Iterate it by reference (`for msg in &batch`) or by value.
///
/// ```
/// # use sluice_sdk::testing;
/// let batch = testing::batch([testing::message("a"), testing::message("bc")]);
/// assert_eq!(batch.len(), 2);
/// let total: usize = batch.iter().map(|m| m.body().len()).sum();
/// assert_eq!(total, 3);
/// for msg in &batch {
///     assert!(msg.id().starts_with("msg-"));
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    messages: Vec<Message>,
}

impl Batch {
    pub(crate) fn new(messages: Vec<Message>) -> Self {
        Batch { messages }
    }

    /// The messages, in delivery order.
    ///
    /// ```
    /// # let batch = sluice_sdk::testing::batch([sluice_sdk::testing::message("a")]);
    /// assert_eq!(batch.messages()[0].body(), b"a");
    /// ```
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// Iterates the messages by reference.
    ///
    /// ```
    /// # let batch = sluice_sdk::testing::batch([sluice_sdk::testing::message("a")]);
    /// assert_eq!(batch.iter().count(), 1);
    /// ```
    pub fn iter(&self) -> std::slice::Iter<'_, Message> {
        self.messages.iter()
    }

    /// How many messages the batch holds.
    ///
    /// ```
    /// # let batch = sluice_sdk::testing::batch([sluice_sdk::testing::message("a")]);
    /// assert_eq!(batch.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether the batch is empty (the host never delivers an empty batch).
    ///
    /// ```
    /// # let batch = sluice_sdk::testing::batch([sluice_sdk::testing::message("a")]);
    /// assert!(!batch.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

impl IntoIterator for Batch {
    type Item = Message;
    type IntoIter = std::vec::IntoIter<Message>;

    fn into_iter(self) -> Self::IntoIter {
        self.messages.into_iter()
    }
}

impl<'a> IntoIterator for &'a Batch {
    type Item = &'a Message;
    type IntoIter = std::slice::Iter<'a, Message>;

    fn into_iter(self) -> Self::IntoIter {
        self.messages.iter()
    }
}
