//! A native test harness: run a handler in plain `cargo test`, without a host or WebAssembly.
//!
//! Build messages with [`message`], run the handler with [`run`] (or a [`Harness`] to simulate
//! queues that do not exist), and inspect the [`Report`]: what was acknowledged, retried or
//! dead-lettered, the error or panic that failed the batch, and what the handler sent.
//! Only available on native targets, where [`send`](crate::send) records into this harness.
//!
//! ```
//! use sluice_sdk::{testing, Batch, Disposition, Error, Outcome};
//!
//! fn handle(batch: Batch) -> Result<Outcome, Error> {
//!     let mut outcome = Outcome::ack_all();
//!     for msg in &batch {
//!         match msg.body_str() {
//!             Ok(text) => sluice_sdk::send("upper", text.to_uppercase())?,
//!             Err(e) => {
//!                 outcome.dead_letter(msg, e);
//!             }
//!         }
//!     }
//!     Ok(outcome)
//! }
//!
//! let report = testing::run(handle, [testing::message("hi"), testing::message(vec![0xff])]);
//! assert_eq!(report.acked(), ["msg-1"]);
//! assert!(matches!(report.disposition("msg-2"), Some(Disposition::DeadLetter(_))));
//! assert_eq!(report.sent()[0].queue, "upper");
//! assert_eq!(report.sent()[0].body_str().unwrap(), "HI");
//! ```

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Batch, Disposition, Error, Failure, Message, Outcome, Outgoing};

thread_local! {
    static SENT: RefCell<Vec<SentMessage>> = const { RefCell::new(Vec::new()) };
    static QUEUES: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Called by `send` on native targets.
pub(crate) fn record(outgoing: Outgoing) -> Result<(), Error> {
    let known = QUEUES.with_borrow(|queues| {
        queues
            .as_ref()
            .is_none_or(|queues| queues.contains(&outgoing.queue))
    });
    if !known {
        return Err(Error::new(format!(
            "queue `{}` does not exist",
            outgoing.queue
        )));
    }
    SENT.with_borrow_mut(|sent| {
        sent.push(SentMessage {
            queue: outgoing.queue,
            body: outgoing.body,
            attributes: outgoing.attributes,
            delay: outgoing.delay,
        })
    });
    Ok(())
}

/// Starts a test message with this body (a `&str`, `String`, `&[u8]` or `Vec<u8>`).
///
/// Defaults: queue `"test"`, attempt 1, no attributes, enqueued now, and the id `msg-N` where `N`
/// is its 1-based position in the batch (`msg-1` when built alone).
///
/// ```
/// let msg = sluice_sdk::testing::message("hello").attribute("tenant", "acme").attempt(2).build();
/// assert_eq!((msg.id(), msg.queue(), msg.attempt()), ("msg-1", "test", 2));
/// ```
pub fn message(body: impl Into<Vec<u8>>) -> TestMessage {
    TestMessage {
        id: None,
        queue: "test".to_owned(),
        body: body.into(),
        attributes: Vec::new(),
        attempt: 1,
        enqueued_at: None,
    }
}

/// Starts a test message whose body is `value` serialized as JSON.
///
/// ```
/// let msg = sluice_sdk::testing::json_message(&serde_json::json!({"id": 1})).build();
/// assert_eq!(msg.body(), br#"{"id":1}"#);
/// ```
///
/// # Panics
///
/// If `value` cannot be serialized (a map with non-string keys, for instance).
pub fn json_message<T: Serialize + ?Sized>(value: &T) -> TestMessage {
    message(serde_json::to_vec(value).expect("test message body serializes to JSON"))
}

/// A test message being built; see [`message`].
#[derive(Debug, Clone)]
pub struct TestMessage {
    id: Option<String>,
    queue: String,
    body: Vec<u8>,
    attributes: Vec<(String, String)>,
    attempt: u32,
    enqueued_at: Option<SystemTime>,
}

impl TestMessage {
    /// Sets the id (by default `msg-N`, from the position in the batch).
    ///
    /// ```
    /// assert_eq!(sluice_sdk::testing::message("x").id("a").build().id(), "a");
    /// ```
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the queue the message was leased from (by default `"test"`).
    ///
    /// ```
    /// assert_eq!(sluice_sdk::testing::message("x").queue("orders").build().queue(), "orders");
    /// ```
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Adds an attribute.
    ///
    /// ```
    /// let msg = sluice_sdk::testing::message("x").attribute("fail", "retry").build();
    /// assert_eq!(msg.attribute("fail"), Some("retry"));
    /// ```
    pub fn attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.push((name.into(), value.into()));
        self
    }

    /// Sets the delivery attempt (by default 1).
    ///
    /// ```
    /// assert_eq!(sluice_sdk::testing::message("x").attempt(4).build().attempt(), 4);
    /// ```
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// Sets when the message was enqueued (by default, when it is built), at millisecond
    /// precision.
    ///
    /// ```
    /// # use std::time::{Duration, UNIX_EPOCH};
    /// let msg = sluice_sdk::testing::message("x").enqueued_at(UNIX_EPOCH + Duration::from_secs(1)).build();
    /// assert_eq!(msg.enqueued_at_ms(), 1000);
    /// ```
    pub fn enqueued_at(mut self, at: SystemTime) -> Self {
        self.enqueued_at = Some(at);
        self
    }

    /// Builds the message on its own, to test code that takes a `&Message`.
    ///
    /// ```
    /// let msg = sluice_sdk::testing::message("x").build();
    /// assert_eq!(msg.body(), b"x");
    /// ```
    pub fn build(self) -> Message {
        self.build_at(0)
    }

    fn build_at(self, index: usize) -> Message {
        let enqueued_at = self.enqueued_at.unwrap_or_else(SystemTime::now);
        let enqueued_at_ms = enqueued_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        Message {
            id: self.id.unwrap_or_else(|| format!("msg-{}", index + 1)),
            queue: self.queue,
            body: self.body,
            attributes: self.attributes,
            attempt: self.attempt,
            enqueued_at_ms: u64::try_from(enqueued_at_ms).unwrap_or(u64::MAX),
        }
    }
}

/// Builds a batch of test messages, to call a handler directly.
///
/// ```
/// use sluice_sdk::testing;
/// let batch = testing::batch([testing::message("a"), testing::message("b")]);
/// assert_eq!(batch.iter().map(|m| m.id()).collect::<Vec<_>>(), ["msg-1", "msg-2"]);
/// ```
pub fn batch(messages: impl IntoIterator<Item = TestMessage>) -> Batch {
    Batch::new(
        messages
            .into_iter()
            .enumerate()
            .map(|(i, m)| m.build_at(i))
            .collect(),
    )
}

/// Runs `handler` on one batch of `messages`, as the host would, and reports what happened.
/// Every queue exists; see [`Harness`] to make sends fail.
///
/// ```
/// use sluice_sdk::{testing, Batch, Error, Outcome};
///
/// fn handle(_batch: Batch) -> Result<Outcome, Error> {
///     Err(Error::new("database down"))
/// }
/// let report = testing::run(handle, [testing::message("x")]);
/// assert_eq!(report.error().unwrap().message(), "database down");
/// assert!(report.acked().is_empty());
/// ```
pub fn run<F>(handler: F, messages: impl IntoIterator<Item = TestMessage>) -> Report
where
    F: FnOnce(Batch) -> Result<Outcome, Error>,
{
    Harness::new().run(handler, messages)
}

/// Runs handlers with a configured environment; [`run`] is `Harness::new().run(..)`.
///
/// ```
/// use sluice_sdk::{testing::{self, Harness}, Batch, Error, Outcome};
///
/// fn handle(batch: Batch) -> Result<Outcome, Error> {
///     for msg in &batch {
///         sluice_sdk::send("missing", msg.body().to_vec())?;
///     }
///     Ok(Outcome::ack_all())
/// }
/// let report = Harness::new().queues(["known"]).run(handle, [testing::message("x")]);
/// assert_eq!(report.error().unwrap().message(), "queue `missing` does not exist");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Harness {
    queues: Option<Vec<String>>,
}

impl Harness {
    /// A harness in which every queue exists.
    ///
    /// ```
    /// let harness = sluice_sdk::testing::Harness::new();
    /// # let _ = harness;
    /// ```
    pub fn new() -> Self {
        Harness::default()
    }

    /// Only these queues exist: a send to any other fails, as it does on the host.
    ///
    /// ```
    /// let harness = sluice_sdk::testing::Harness::new().queues(["orders-books", "orders-music"]);
    /// # let _ = harness;
    /// ```
    pub fn queues<Q: Into<String>>(mut self, queues: impl IntoIterator<Item = Q>) -> Self {
        self.queues = Some(queues.into_iter().map(Into::into).collect());
        self
    }

    /// Runs `handler` on one batch of `messages` and reports what happened. A panic in the
    /// handler is caught and reported, as the host reports a trap.
    ///
    /// ```
    /// use sluice_sdk::{testing::{self, Harness}, Batch, Error, Outcome};
    /// fn handle(_: Batch) -> Result<Outcome, Error> { Ok(Outcome::ack_all()) }
    /// let report = Harness::new().run(handle, [testing::message("x")]);
    /// assert!(report.is_ok());
    /// ```
    pub fn run<F>(&self, handler: F, messages: impl IntoIterator<Item = TestMessage>) -> Report
    where
        F: FnOnce(Batch) -> Result<Outcome, Error>,
    {
        let batch = batch(messages);
        let ids = batch.iter().map(|m| m.id().to_owned()).collect();
        SENT.with_borrow_mut(Vec::clear);
        let previous_queues = QUEUES.replace(self.queues.clone());
        let result = catch_unwind(AssertUnwindSafe(|| handler(batch)));
        QUEUES.set(previous_queues);
        let sent = SENT.take();
        let result = match result {
            Ok(Ok(outcome)) => RunResult::Completed(outcome.into_failures()),
            Ok(Err(error)) => RunResult::Failed(error),
            Err(payload) => RunResult::Panicked(
                payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panicked".to_owned()),
            ),
        };
        Report { ids, result, sent }
    }
}

/// How a test run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunResult {
    /// The handler returned `Ok`: these messages failed, every other one is acknowledged.
    Completed(Vec<Failure>),
    /// The handler returned `Err`: the whole batch is retried and its sends discarded.
    Failed(Error),
    /// The handler panicked (a trap on the host): like `Failed`, with the panic message.
    Panicked(String),
}

/// A message a handler sent during a test run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// The destination queue.
    pub queue: String,
    /// The raw body.
    pub body: Vec<u8>,
    /// Attributes (name, value), in the order they were added.
    pub attributes: Vec<(String, String)>,
    /// The delay asked for, if any.
    pub delay: Option<Duration>,
}

impl SentMessage {
    /// The body as text; an error if it is not UTF-8.
    ///
    /// ```
    /// # use sluice_sdk::{testing, Batch, Error, Outcome};
    /// # fn handle(_: Batch) -> Result<Outcome, Error> { sluice_sdk::send("q", "hi")?; Ok(Outcome::ack_all()) }
    /// let report = testing::run(handle, [testing::message("x")]);
    /// assert_eq!(report.sent()[0].body_str().unwrap(), "hi");
    /// ```
    pub fn body_str(&self) -> Result<&str, Error> {
        Ok(std::str::from_utf8(&self.body)?)
    }

    /// The body parsed as JSON.
    ///
    /// ```
    /// # use sluice_sdk::{testing, Batch, Error, Outcome};
    /// # fn handle(_: Batch) -> Result<Outcome, Error> { sluice_sdk::send_json("q", &[1, 2])?; Ok(Outcome::ack_all()) }
    /// let report = testing::run(handle, [testing::message("x")]);
    /// assert_eq!(report.sent()[0].json::<Vec<u32>>().unwrap(), [1, 2]);
    /// ```
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// The value of the first attribute called `name`, if any.
    ///
    /// ```
    /// # use sluice_sdk::{testing, Batch, Error, Outcome, Outgoing};
    /// # fn handle(_: Batch) -> Result<Outcome, Error> { Outgoing::new("q").attribute("k", "v").send()?; Ok(Outcome::ack_all()) }
    /// let report = testing::run(handle, [testing::message("x")]);
    /// assert_eq!(report.sent()[0].attribute("k"), Some("v"));
    /// ```
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What happened in a test run; see [`run`].
#[derive(Debug, Clone)]
pub struct Report {
    ids: Vec<String>,
    result: RunResult,
    sent: Vec<SentMessage>,
}

impl Report {
    /// How the run ended.
    ///
    /// ```
    /// # use sluice_sdk::{testing::{self, RunResult}, Batch, Error, Outcome};
    /// # fn handle(_: Batch) -> Result<Outcome, Error> { panic!("boom") }
    /// let report = testing::run(handle, [testing::message("x")]);
    /// assert_eq!(report.result(), &RunResult::Panicked("boom".into()));
    /// ```
    pub fn result(&self) -> &RunResult {
        &self.result
    }

    /// Whether the handler returned `Ok` (some messages may still have failed).
    ///
    /// ```
    /// # use sluice_sdk::{testing, Batch, Error, Outcome};
    /// # fn handle(_: Batch) -> Result<Outcome, Error> { Ok(Outcome::ack_all()) }
    /// assert!(testing::run(handle, [testing::message("x")]).is_ok());
    /// ```
    pub fn is_ok(&self) -> bool {
        matches!(self.result, RunResult::Completed(_))
    }

    /// The ids of the acknowledged messages, in batch order (none if the batch failed).
    ///
    /// ```
    /// # use sluice_sdk::{testing, Batch, Error, Outcome};
    /// # fn handle(_: Batch) -> Result<Outcome, Error> { Ok(Outcome::ack_all()) }
    /// let report = testing::run(handle, [testing::message("a"), testing::message("b")]);
    /// assert_eq!(report.acked(), ["msg-1", "msg-2"]);
    /// ```
    pub fn acked(&self) -> Vec<&str> {
        match &self.result {
            RunResult::Completed(failures) => self
                .ids
                .iter()
                .filter(|id| !failures.iter().any(|f| f.id == **id))
                .map(String::as_str)
                .collect(),
            RunResult::Failed(_) | RunResult::Panicked(_) => Vec::new(),
        }
    }

    /// The messages the handler marked as failed (empty if the batch failed as a whole).
    ///
    /// ```
    /// # use sluice_sdk::{testing, Batch, Error, Outcome};
    /// # fn handle(b: Batch) -> Result<Outcome, Error> { let mut o = Outcome::ack_all(); o.retry(&b.messages()[0]); Ok(o) }
    /// let report = testing::run(handle, [testing::message("a")]);
    /// assert_eq!(report.failures()[0].id, "msg-1");
    /// ```
    pub fn failures(&self) -> &[Failure] {
        match &self.result {
            RunResult::Completed(failures) => failures,
            RunResult::Failed(_) | RunResult::Panicked(_) => &[],
        }
    }

    /// What the handler asked for message `id`: `None` if it was acknowledged (or the batch
    /// failed as a whole).
    ///
    /// ```
    /// # use sluice_sdk::{testing, Batch, Disposition, Error, Outcome};
    /// # fn handle(b: Batch) -> Result<Outcome, Error> { let mut o = Outcome::ack_all(); o.dead_letter(&b.messages()[0], "bad"); Ok(o) }
    /// let report = testing::run(handle, [testing::message("a"), testing::message("b")]);
    /// assert_eq!(report.disposition("msg-1"), Some(&Disposition::DeadLetter("bad".into())));
    /// assert_eq!(report.disposition("msg-2"), None);
    /// ```
    pub fn disposition(&self, id: &str) -> Option<&Disposition> {
        self.failures()
            .iter()
            .find(|f| f.id == id)
            .map(|f| &f.disposition)
    }

    /// The error the handler returned, if it failed the batch.
    ///
    /// ```
    /// # use sluice_sdk::{testing, Batch, Error, Outcome};
    /// # fn handle(_: Batch) -> Result<Outcome, Error> { Err(Error::new("nope")) }
    /// assert_eq!(testing::run(handle, [testing::message("a")]).error().unwrap().message(), "nope");
    /// ```
    pub fn error(&self) -> Option<&Error> {
        match &self.result {
            RunResult::Failed(error) => Some(error),
            RunResult::Completed(_) | RunResult::Panicked(_) => None,
        }
    }

    /// The panic message, if the handler panicked.
    ///
    /// ```
    /// # use sluice_sdk::{testing, Batch, Error, Outcome};
    /// # fn handle(_: Batch) -> Result<Outcome, Error> { panic!("at the disco") }
    /// assert_eq!(testing::run(handle, [testing::message("a")]).panic_message(), Some("at the disco"));
    /// ```
    pub fn panic_message(&self) -> Option<&str> {
        match &self.result {
            RunResult::Panicked(message) => Some(message),
            RunResult::Completed(_) | RunResult::Failed(_) => None,
        }
    }

    /// Every message the handler sent, in order, whether or not the host would commit them.
    ///
    /// ```
    /// # use sluice_sdk::{testing, Batch, Error, Outcome};
    /// # fn handle(_: Batch) -> Result<Outcome, Error> { sluice_sdk::send("q", "x")?; Err(Error::new("then failed")) }
    /// let report = testing::run(handle, [testing::message("a")]);
    /// assert_eq!(report.sent().len(), 1);
    /// assert!(report.committed().is_empty());
    /// ```
    pub fn sent(&self) -> &[SentMessage] {
        &self.sent
    }

    /// The messages the host would commit: everything sent if the handler returned `Ok`,
    /// nothing if it failed the batch or panicked.
    ///
    /// ```
    /// # use sluice_sdk::{testing, Batch, Error, Outcome};
    /// # fn handle(_: Batch) -> Result<Outcome, Error> { sluice_sdk::send("q", "x")?; Ok(Outcome::ack_all()) }
    /// assert_eq!(testing::run(handle, [testing::message("a")]).committed().len(), 1);
    /// ```
    pub fn committed(&self) -> &[SentMessage] {
        if self.is_ok() { &self.sent } else { &[] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo(batch: Batch) -> Result<Outcome, Error> {
        for msg in &batch {
            crate::Outgoing::new("echo")
                .body(msg.body())
                .attribute("from", msg.id())
                .delay(Duration::from_millis(5))
                .send()?;
        }
        Ok(Outcome::ack_all())
    }

    #[test]
    fn runs_are_isolated() {
        let first = run(echo, [message("a"), message("b")]);
        let second = run(echo, [message("c")]);
        assert_eq!(first.sent().len(), 2);
        assert_eq!(second.sent().len(), 1);
        assert_eq!(second.sent()[0].attribute("from"), Some("msg-1"));
        assert_eq!(second.sent()[0].delay, Some(Duration::from_millis(5)));
    }

    #[test]
    fn unknown_queues_fail_and_the_setting_does_not_leak() {
        let report = Harness::new().queues(["other"]).run(echo, [message("a")]);
        assert!(report.error().is_some());
        assert!(run(echo, [message("a")]).is_ok());
    }

    #[test]
    fn explicit_ids_are_kept() {
        let report = run(echo, [message("a").id("first"), message("b")]);
        assert_eq!(report.acked(), ["first", "msg-2"]);
    }
}
