//! A native test harness: run a handler in plain `cargo test`, without a host or WebAssembly.
//!
//! Build messages with [`message`], run the handler with [`run`] (or a [`Harness`] to simulate
//! queues and topics that do not exist and to answer HTTP requests), and inspect the [`Report`]:
//! what was acknowledged, retried or dead-lettered, the error or panic that failed the batch,
//! and what the handler sent, published, replied and requested. Only available on native
//! targets, where [`send`](crate::send), [`publish`](crate::publish) and
//! [`reply`](crate::reply) record into this harness, with the host's checks: a destination must
//! exist, a priority is 0 to 9, a group key 1 to 128 bytes without control characters, and a
//! message of the batch gets at most one reply. Outbound HTTP ([`crate::http`]) is answered by
//! the harness's [`stub`]s and recorded; a request no stub matches fails with an
//! [`http::Error::Other`](crate::http::Error::Other) that says so. Key-value buckets
//! ([`crate::kv`]) live in the harness's memory: a run's writes are visible to the run, and
//! committed to the harness (for its next run, and for [`Harness::get`]) only when the handler
//! returns `Ok`, as on the host.
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
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Batch, Disposition, Error, Failure, Message, Outcome, Outgoing, Publication, Reply};

pub(crate) mod buckets;
mod stubs;

pub use buckets::KvWrite;

pub(crate) use stubs::answer;
pub use stubs::{SentRequest, Stub, stub, stub_prefix};

thread_local! {
    static SENT: RefCell<Vec<SentMessage>> = const { RefCell::new(Vec::new()) };
    static PUBLISHED: RefCell<Vec<PublishedMessage>> = const { RefCell::new(Vec::new()) };
    static REPLIES: RefCell<Vec<ReplyMessage>> = const { RefCell::new(Vec::new()) };
    static QUEUES: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
    static TOPICS: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
    /// The ids of the batch being run; `None` outside a run, where any id may be replied to.
    static BATCH: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

use crate::outbox::{DEFAULT_PRIORITY, MAX_GROUP_BYTES, MAX_PRIORITY};

/// Whether `name` is among `known` (every name is when nothing was configured).
fn exists(known: &'static std::thread::LocalKey<RefCell<Option<Vec<String>>>>, name: &str) -> bool {
    known.with_borrow(|known| {
        known
            .as_ref()
            .is_none_or(|known| known.iter().any(|k| k == name))
    })
}

/// Called by `send` on native targets.
pub(crate) fn record(outgoing: Outgoing) -> Result<(), Error> {
    if let Some(priority) = outgoing.priority.filter(|p| *p > MAX_PRIORITY) {
        return Err(Error::new(format!(
            "invalid message: priority {priority} is out of range; give 0 (lowest) to \
             {MAX_PRIORITY} (highest), or leave it out for {DEFAULT_PRIORITY}"
        )));
    }
    if let Some(group) = &outgoing.group {
        if group.is_empty() || group.len() > MAX_GROUP_BYTES {
            return Err(Error::new(format!(
                "invalid message: a group key must be 1 to {MAX_GROUP_BYTES} bytes, not {}",
                group.len()
            )));
        }
        if group.chars().any(char::is_control) {
            return Err(Error::new(
                "invalid message: a group key must not contain control characters",
            ));
        }
    }
    if !exists(&QUEUES, &outgoing.queue) {
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
            priority: outgoing.priority,
            group: outgoing.group,
        })
    });
    Ok(())
}

/// Called by `publish` on native targets.
pub(crate) fn record_publication(publication: Publication) -> Result<(), Error> {
    if !exists(&TOPICS, &publication.topic) {
        return Err(Error::new(format!(
            "topic `{}` does not exist",
            publication.topic
        )));
    }
    PUBLISHED.with_borrow_mut(|published| {
        published.push(PublishedMessage {
            topic: publication.topic,
            body: publication.body,
            attributes: publication.attributes,
        })
    });
    Ok(())
}

/// Called by `reply` on native targets.
pub(crate) fn record_reply(reply: Reply) -> Result<(), Error> {
    let id = &reply.message_id;
    if REPLIES.with_borrow(|replies| replies.iter().any(|r| r.message_id == *id)) {
        return Err(Error::new(format!(
            "message `{id}` already has a reply in this invocation; a message gets at most one"
        )));
    }
    if !exists(&BATCH, id) {
        return Err(Error::new(format!(
            "message `{id}` is not in this batch; reply to a message of the batch being handled"
        )));
    }
    REPLIES.with_borrow_mut(|replies| {
        replies.push(ReplyMessage {
            message_id: reply.message_id,
            body: reply.body,
            attributes: reply.attributes,
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
        priority: DEFAULT_PRIORITY,
        group: None,
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
    priority: u8,
    group: Option<String>,
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

    /// Sets the priority (by default 4).
    ///
    /// ```
    /// assert_eq!(sluice_sdk::testing::message("x").priority(8).build().priority(), 8);
    /// ```
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    /// Puts the message in an ordered group (by default none).
    ///
    /// ```
    /// let msg = sluice_sdk::testing::message("x").group("account-42").build();
    /// assert_eq!(msg.group(), Some("account-42"));
    /// ```
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
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
            priority: self.priority,
            group: self.group,
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
/// Every queue and topic exists; see [`Harness`] to make sends and publications fail.
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
///
/// A harness keeps the key-value state its runs commit, so a test can run several batches in
/// turn and read what they left; clones share that state.
#[derive(Debug, Clone, Default)]
pub struct Harness {
    queues: Option<Vec<String>>,
    topics: Option<Vec<String>>,
    stubs: Vec<Stub>,
    kv: Rc<RefCell<buckets::Committed>>,
}

impl Harness {
    /// A harness in which every queue and every topic exists, and no HTTP request is answered.
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

    /// Only these topics exist: a publication to any other fails, as it does on the host.
    ///
    /// ```
    /// use sluice_sdk::{testing::{self, Harness}, Batch, Error, Outcome};
    ///
    /// fn handle(_: Batch) -> Result<Outcome, Error> {
    ///     sluice_sdk::publish("audit", "seen")?;
    ///     Ok(Outcome::ack_all())
    /// }
    /// let report = Harness::new().topics(["orders"]).run(handle, [testing::message("x")]);
    /// assert_eq!(report.error().unwrap().message(), "topic `audit` does not exist");
    /// ```
    pub fn topics<T: Into<String>>(mut self, topics: impl IntoIterator<Item = T>) -> Self {
        self.topics = Some(topics.into_iter().map(Into::into).collect());
        self
    }

    /// Answers the handler's HTTP requests that `stub` matches (repeatable; see [`stub`] and
    /// [`stub_prefix`] for which stub answers when several match). A request no stub matches
    /// fails with an error saying so.
    ///
    /// ```
    /// use sluice_sdk::{http, testing::{self, Harness}, Batch, Error, Outcome};
    ///
    /// fn handle(batch: Batch) -> Result<Outcome, Error> {
    ///     for msg in &batch {
    ///         http::post("https://hooks.example.com/a", msg.body())?;
    ///     }
    ///     Ok(Outcome::ack_all())
    /// }
    /// let report = Harness::new()
    ///     .http(testing::stub("https://hooks.example.com/a").status(202))
    ///     .run(handle, [testing::message("hi")]);
    /// assert!(report.is_ok());
    /// assert_eq!(report.requests()[0].body_str().unwrap(), "hi");
    ///
    /// let report = testing::run(handle, [testing::message("hi")]);
    /// assert!(report.error().unwrap().message().starts_with("no HTTP stub matches POST https://hooks.example.com/a"));
    /// ```
    pub fn http(mut self, stub: Stub) -> Self {
        self.stubs.push(stub);
        self
    }

    /// Lets the handler open `bucket` (repeatable). Once any bucket is named, only the named
    /// ones open and any other fails with [`kv::Error::AccessDenied`](crate::kv::Error), as a
    /// bucket the function's version does not list does on the host; a harness that names none
    /// lets every bucket open, empty.
    ///
    /// ```
    /// use sluice_sdk::{kv, testing::{self, Harness}, Batch, Error, Outcome};
    ///
    /// fn handle(_: Batch) -> Result<Outcome, Error> {
    ///     kv::open("secrets")?;
    ///     Ok(Outcome::ack_all())
    /// }
    /// let report = Harness::new().bucket("counts").run(handle, [testing::message("x")]);
    /// assert!(report.error().unwrap().message().starts_with("bucket `secrets` is not listed"));
    /// ```
    pub fn bucket(self, bucket: &str) -> Self {
        self.kv.borrow_mut().declare(bucket);
        self
    }

    /// Commits `value` to `key` of `bucket` before any run, as an operator's
    /// `PUT /v1/kv/{bucket}/keys/{key}` does (and lets the handler open the bucket, as
    /// [`bucket`](Harness::bucket) does).
    ///
    /// ```
    /// use sluice_sdk::{kv, testing::{self, Harness}, Batch, Error, Outcome};
    ///
    /// fn handle(_: Batch) -> Result<Outcome, Error> {
    ///     kv::open("counts")?.increment("count:acme", 1)?;
    ///     Ok(Outcome::ack_all())
    /// }
    /// let harness = Harness::new().kv("counts", "count:acme", "41");
    /// harness.run(handle, [testing::message("x")]);
    /// assert_eq!(harness.get("counts", "count:acme").unwrap(), b"42");
    /// ```
    pub fn kv(self, bucket: &str, key: &str, value: impl Into<Vec<u8>>) -> Self {
        {
            let mut kv = self.kv.borrow_mut();
            kv.declare(bucket);
            kv.put(bucket, key, Some(value.into()));
        }
        self
    }

    /// The committed value of `key` in `bucket`: what the runs that returned `Ok` wrote (and
    /// what [`kv`](Harness::kv) set), never the writes of a run that failed.
    ///
    /// ```
    /// use sluice_sdk::{kv, testing::{self, Harness}, Batch, Error, Outcome};
    ///
    /// fn handle(_: Batch) -> Result<Outcome, Error> {
    ///     kv::open("counts")?.increment("n", 1)?;
    ///     Err(Error::new("then failed"))
    /// }
    /// let harness = Harness::new();
    /// let report = harness.run(handle, [testing::message("x")]);
    /// assert_eq!(report.kv_writes().len(), 1);
    /// assert_eq!(harness.get("counts", "n"), None, "a failed batch leaves no writes");
    /// ```
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        self.kv.borrow().get(bucket, key).map(<[u8]>::to_vec)
    }

    /// The committed keys of `bucket`, in byte order.
    ///
    /// ```
    /// use sluice_sdk::testing::Harness;
    /// let harness = Harness::new().kv("seen", "b", "").kv("seen", "a", "");
    /// assert_eq!(harness.keys("seen"), ["a", "b"]);
    /// ```
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        self.kv.borrow().keys(bucket)
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
        let ids: Vec<String> = batch.iter().map(|m| m.id().to_owned()).collect();
        SENT.with_borrow_mut(Vec::clear);
        PUBLISHED.with_borrow_mut(Vec::clear);
        REPLIES.with_borrow_mut(Vec::clear);
        let previous_queues = QUEUES.replace(self.queues.clone());
        let previous_topics = TOPICS.replace(self.topics.clone());
        let previous_batch = BATCH.replace(Some(ids.clone()));
        // Requests made outside a run (a unit test calling `http::get` directly) are not this
        // run's.
        stubs::take_requests();
        let previous_stubs = stubs::install(self.stubs.clone());
        let previous_kv = buckets::start(self.kv.borrow().clone());
        let result = catch_unwind(AssertUnwindSafe(|| handler(batch)));
        let kv_writes = buckets::finish(previous_kv);
        QUEUES.set(previous_queues);
        TOPICS.set(previous_topics);
        BATCH.set(previous_batch);
        stubs::install(previous_stubs);
        let sent = SENT.take();
        let published = PUBLISHED.take();
        let replies = REPLIES.take();
        let requests = stubs::take_requests();
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
        // The host commits state with the ack, for `Ok` only.
        if matches!(result, RunResult::Completed(_)) {
            let mut committed = self.kv.borrow_mut();
            for write in &kv_writes {
                committed.put(&write.bucket, &write.key, write.value.clone());
            }
        }
        Report {
            ids,
            result,
            sent,
            published,
            replies,
            requests,
            kv_writes,
        }
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
    /// The priority asked for, if any (the host's default is 4).
    pub priority: Option<u8>,
    /// The ordered group asked for, if any.
    pub group: Option<String>,
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
        attribute(&self.attributes, name)
    }
}

/// A message a handler published during a test run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedMessage {
    /// The topic.
    pub topic: String,
    /// The raw body.
    pub body: Vec<u8>,
    /// Attributes (name, value), in the order they were added.
    pub attributes: Vec<(String, String)>,
}

impl PublishedMessage {
    /// The body as text; an error if it is not UTF-8.
    ///
    /// ```
    /// # use sluice_sdk::{testing, Batch, Error, Outcome};
    /// # fn handle(_: Batch) -> Result<Outcome, Error> { sluice_sdk::publish("t", "hi")?; Ok(Outcome::ack_all()) }
    /// let report = testing::run(handle, [testing::message("x")]);
    /// assert_eq!(report.published()[0].body_str().unwrap(), "hi");
    /// ```
    pub fn body_str(&self) -> Result<&str, Error> {
        Ok(std::str::from_utf8(&self.body)?)
    }

    /// The body parsed as JSON.
    ///
    /// ```
    /// # use sluice_sdk::{testing, Batch, Error, Outcome};
    /// # fn handle(_: Batch) -> Result<Outcome, Error> { sluice_sdk::publish_json("t", &[1, 2])?; Ok(Outcome::ack_all()) }
    /// let report = testing::run(handle, [testing::message("x")]);
    /// assert_eq!(report.published()[0].json::<Vec<u32>>().unwrap(), [1, 2]);
    /// ```
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// The value of the first attribute called `name`, if any.
    ///
    /// ```
    /// # use sluice_sdk::{testing, Batch, Error, Outcome, Publication};
    /// # fn handle(_: Batch) -> Result<Outcome, Error> { Publication::new("t").attribute("k", "v").publish()?; Ok(Outcome::ack_all()) }
    /// let report = testing::run(handle, [testing::message("x")]);
    /// assert_eq!(report.published()[0].attribute("k"), Some("v"));
    /// ```
    pub fn attribute(&self, name: &str) -> Option<&str> {
        attribute(&self.attributes, name)
    }
}

/// A reply a handler made during a test run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyMessage {
    /// The id of the message of the batch it answers.
    pub message_id: String,
    /// The raw body.
    pub body: Vec<u8>,
    /// Attributes (name, value), in the order they were added.
    pub attributes: Vec<(String, String)>,
}

impl ReplyMessage {
    /// The body as text; an error if it is not UTF-8.
    ///
    /// ```
    /// # use sluice_sdk::{testing, Batch, Error, Outcome};
    /// # fn handle(b: Batch) -> Result<Outcome, Error> { sluice_sdk::reply(&b.messages()[0], "hi")?; Ok(Outcome::ack_all()) }
    /// let report = testing::run(handle, [testing::message("x")]);
    /// assert_eq!(report.replies()[0].body_str().unwrap(), "hi");
    /// ```
    pub fn body_str(&self) -> Result<&str, Error> {
        Ok(std::str::from_utf8(&self.body)?)
    }

    /// The body parsed as JSON.
    ///
    /// ```
    /// # use sluice_sdk::{testing, Batch, Error, Outcome};
    /// # fn handle(b: Batch) -> Result<Outcome, Error> { sluice_sdk::reply_json(&b.messages()[0], &[1, 2])?; Ok(Outcome::ack_all()) }
    /// let report = testing::run(handle, [testing::message("x")]);
    /// assert_eq!(report.replies()[0].json::<Vec<u32>>().unwrap(), [1, 2]);
    /// ```
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// The value of the first attribute called `name`, if any.
    ///
    /// ```
    /// # use sluice_sdk::{testing, Batch, Error, Outcome, Reply};
    /// # fn handle(b: Batch) -> Result<Outcome, Error> { Reply::to(&b.messages()[0]).attribute("k", "v").send()?; Ok(Outcome::ack_all()) }
    /// let report = testing::run(handle, [testing::message("x")]);
    /// assert_eq!(report.replies()[0].attribute("k"), Some("v"));
    /// ```
    pub fn attribute(&self, name: &str) -> Option<&str> {
        attribute(&self.attributes, name)
    }
}

/// The value of the first attribute called `name` in `attributes`.
fn attribute<'a>(attributes: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// What happened in a test run; see [`run`].
#[derive(Debug, Clone)]
pub struct Report {
    ids: Vec<String>,
    result: RunResult,
    sent: Vec<SentMessage>,
    published: Vec<PublishedMessage>,
    replies: Vec<ReplyMessage>,
    requests: Vec<SentRequest>,
    kv_writes: Vec<KvWrite>,
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

    /// Every message the handler published, in order, whether or not the host would commit
    /// them.
    ///
    /// ```
    /// # use sluice_sdk::{testing, Batch, Error, Outcome};
    /// # fn handle(_: Batch) -> Result<Outcome, Error> { sluice_sdk::publish("t", "x")?; Err(Error::new("then failed")) }
    /// let report = testing::run(handle, [testing::message("a")]);
    /// assert_eq!(report.published()[0].topic, "t");
    /// assert!(report.committed_publications().is_empty());
    /// ```
    pub fn published(&self) -> &[PublishedMessage] {
        &self.published
    }

    /// The publications the host would commit: all of them if the handler returned `Ok`,
    /// none if it failed the batch or panicked.
    ///
    /// ```
    /// # use sluice_sdk::{testing, Batch, Error, Outcome};
    /// # fn handle(_: Batch) -> Result<Outcome, Error> { sluice_sdk::publish("t", "x")?; Ok(Outcome::ack_all()) }
    /// assert_eq!(testing::run(handle, [testing::message("a")]).committed_publications().len(), 1);
    /// ```
    pub fn committed_publications(&self) -> &[PublishedMessage] {
        if self.is_ok() { &self.published } else { &[] }
    }

    /// Every reply the handler made, in order, whether or not the host would commit them.
    ///
    /// ```
    /// # use sluice_sdk::{testing, Batch, Error, Outcome};
    /// # fn handle(b: Batch) -> Result<Outcome, Error> { sluice_sdk::reply(&b.messages()[0], "pong")?; Ok(Outcome::ack_all()) }
    /// let report = testing::run(handle, [testing::message("ping")]);
    /// assert_eq!(report.replies()[0].message_id, "msg-1");
    /// ```
    pub fn replies(&self) -> &[ReplyMessage] {
        &self.replies
    }

    /// The replies the host would commit: those to acknowledged messages, if the handler
    /// returned `Ok`. The reply to a message retried or dead-lettered is discarded.
    ///
    /// ```
    /// # use sluice_sdk::{testing, Batch, Error, Outcome};
    /// fn handle(batch: Batch) -> Result<Outcome, Error> {
    ///     let mut outcome = Outcome::ack_all();
    ///     for msg in &batch {
    ///         sluice_sdk::reply(msg, "seen")?;
    ///         if msg.body() == b"later" {
    ///             outcome.retry(msg);
    ///         }
    ///     }
    ///     Ok(outcome)
    /// }
    /// let report = testing::run(handle, [testing::message("now"), testing::message("later")]);
    /// assert_eq!(report.replies().len(), 2);
    /// let committed: Vec<_> = report.committed_replies().iter().map(|r| r.message_id.as_str()).collect();
    /// assert_eq!(committed, ["msg-1"]);
    /// ```
    pub fn committed_replies(&self) -> Vec<&ReplyMessage> {
        let acked = self.acked();
        self.replies
            .iter()
            .filter(|r| acked.contains(&r.message_id.as_str()))
            .collect()
    }

    /// The reply to message `id`, if the handler made one (committed or not).
    ///
    /// ```
    /// # use sluice_sdk::{testing, Batch, Error, Outcome};
    /// # fn handle(b: Batch) -> Result<Outcome, Error> { sluice_sdk::reply(&b.messages()[0], "pong")?; Ok(Outcome::ack_all()) }
    /// let report = testing::run(handle, [testing::message("ping"), testing::message("ping")]);
    /// assert_eq!(report.reply_to("msg-1").unwrap().body_str().unwrap(), "pong");
    /// assert!(report.reply_to("msg-2").is_none());
    /// ```
    pub fn reply_to(&self, id: &str) -> Option<&ReplyMessage> {
        self.replies.iter().find(|r| r.message_id == id)
    }

    /// The handler's key-value writes, one per key it wrote (its last value), in bucket and key
    /// order, whether or not the host would commit them.
    ///
    /// ```
    /// # use sluice_sdk::{kv, testing, Batch, Error, Outcome};
    /// # fn handle(_: Batch) -> Result<Outcome, Error> { let b = kv::open("b")?; b.set("k", "1")?; b.set("k", "2")?; Err(Error::new("then failed")) }
    /// let report = testing::run(handle, [testing::message("x")]);
    /// assert_eq!(report.kv_writes()[0].value_str(), Some("2"));
    /// assert!(report.committed_kv_writes().is_empty());
    /// ```
    pub fn kv_writes(&self) -> &[KvWrite] {
        &self.kv_writes
    }

    /// The key-value writes the host would commit: all of them if the handler returned `Ok`
    /// (even if it retried or dead-lettered some messages), none if it failed the batch or
    /// panicked.
    ///
    /// ```
    /// # use sluice_sdk::{kv, testing, Batch, Error, Outcome};
    /// # fn handle(_: Batch) -> Result<Outcome, Error> { kv::open("b")?.delete("k")?; Ok(Outcome::ack_all()) }
    /// let report = testing::run(handle, [testing::message("x")]);
    /// assert_eq!(report.committed_kv_writes()[0].value, None);
    /// ```
    pub fn committed_kv_writes(&self) -> &[KvWrite] {
        if self.is_ok() { &self.kv_writes } else { &[] }
    }

    /// Every HTTP request the handler made, in order, whether a stub answered it or failed it
    /// (one the host would deny included). Requests are effects outside Sluice: unlike sends,
    /// they are made whatever the handler returns.
    ///
    /// ```
    /// use sluice_sdk::{http, testing::{self, Harness}, Batch, Error, Outcome};
    ///
    /// fn handle(batch: Batch) -> Result<Outcome, Error> {
    ///     for msg in &batch {
    ///         http::Request::post("https://hooks.example.com/a")
    ///             .header("Idempotency-Key", msg.id())
    ///             .body(msg.body())
    ///             .send()?;
    ///     }
    ///     Ok(Outcome::ack_all())
    /// }
    /// let report = Harness::new()
    ///     .http(testing::stub("https://hooks.example.com/a").status(500))
    ///     .run(handle, [testing::message("one"), testing::message("two")]);
    /// let sent: Vec<_> = report.requests().iter().map(|r| r.header("Idempotency-Key").unwrap()).collect();
    /// assert_eq!(sent, ["msg-1", "msg-2"]);
    /// assert_eq!(report.requests()[1].method, http::Method::Post);
    /// ```
    pub fn requests(&self) -> &[SentRequest] {
        &self.requests
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

    fn everything(batch: Batch) -> Result<Outcome, Error> {
        let mut outcome = Outcome::ack_all();
        for msg in &batch {
            crate::Outgoing::new("next")
                .body(msg.body())
                .priority(msg.priority())
                .group(msg.group().unwrap_or("none"))
                .send()?;
            crate::Publication::new("events")
                .body(msg.body())
                .attribute("from", msg.id())
                .publish()?;
            crate::Reply::to(msg)
                .body(msg.body())
                .attribute("seen", "yes")
                .send()?;
            if msg.body() == b"fail" {
                outcome.dead_letter(msg, "asked to");
            }
        }
        Ok(outcome)
    }

    #[test]
    fn publications_replies_priorities_and_groups_are_recorded() {
        let report = run(
            everything,
            [message("a").priority(9).group("g-1"), message("fail")],
        );
        assert_eq!(report.acked(), ["msg-1"]);
        let sent = report.committed();
        assert_eq!(
            (sent[0].priority, sent[0].group.as_deref()),
            (Some(9), Some("g-1"))
        );
        assert_eq!(
            (sent[1].priority, sent[1].group.as_deref()),
            (Some(4), Some("none"))
        );
        let published = report.committed_publications();
        assert_eq!(published.len(), 2);
        assert_eq!(published[1].topic, "events");
        assert_eq!(published[1].attribute("from"), Some("msg-2"));
        assert_eq!(report.replies().len(), 2);
        let committed: Vec<_> = report
            .committed_replies()
            .iter()
            .map(|r| r.message_id.as_str())
            .collect();
        assert_eq!(
            committed,
            ["msg-1"],
            "a dead-lettered message's reply is discarded"
        );
        assert_eq!(
            report.reply_to("msg-2").unwrap().attribute("seen"),
            Some("yes")
        );

        let second = run(everything, [message("b")]);
        assert_eq!(
            (second.published().len(), second.replies().len()),
            (1, 1),
            "runs are isolated"
        );
    }

    #[test]
    fn a_failed_batch_commits_no_publication_or_reply() {
        fn failing(batch: Batch) -> Result<Outcome, Error> {
            everything(batch)?;
            Err(Error::new("then failed"))
        }
        let report = run(failing, [message("a")]);
        assert_eq!((report.published().len(), report.replies().len()), (1, 1));
        assert!(report.committed_publications().is_empty());
        assert!(report.committed_replies().is_empty());
    }

    #[test]
    fn the_hosts_checks_apply() {
        fn send(outgoing: crate::Outgoing) -> Report {
            run(
                move |_| outgoing.send().map(|()| Outcome::ack_all()),
                [message("x")],
            )
        }
        let error = send(crate::Outgoing::new("q").priority(10));
        assert!(
            error
                .error()
                .unwrap()
                .message()
                .contains("priority 10 is out of range"),
            "{:?}",
            error.result()
        );
        let error = send(crate::Outgoing::new("q").group(""));
        assert!(
            error
                .error()
                .unwrap()
                .message()
                .contains("1 to 128 bytes, not 0")
        );
        let error = send(crate::Outgoing::new("q").group("a\nb"));
        assert!(
            error
                .error()
                .unwrap()
                .message()
                .contains("control characters")
        );
        assert!(send(crate::Outgoing::new("q").priority(0).group("g")).is_ok());

        let report = Harness::new()
            .topics(["other"])
            .run(everything, [message("a")]);
        assert_eq!(
            report.error().unwrap().message(),
            "topic `events` does not exist"
        );
        assert!(
            run(everything, [message("a")]).is_ok(),
            "the setting does not leak"
        );
    }

    #[test]
    fn a_reply_must_answer_a_message_of_the_batch_once() {
        let stranger = message("x").id("elsewhere").build();
        let report = run(
            move |_| crate::reply(&stranger, "hi").map(|()| Outcome::ack_all()),
            [message("a")],
        );
        assert_eq!(
            report.error().unwrap().message(),
            "message `elsewhere` is not in this batch; reply to a message of the batch being handled"
        );
        let report = run(
            |batch: Batch| {
                let msg = &batch.messages()[0];
                crate::reply(msg, "one")?;
                crate::reply(msg, "two")?;
                Ok(Outcome::ack_all())
            },
            [message("a")],
        );
        assert_eq!(
            report.error().unwrap().message(),
            "message `msg-1` already has a reply in this invocation; a message gets at most one"
        );
        assert_eq!(report.replies().len(), 1);
    }

    #[test]
    fn http_requests_are_answered_by_stubs_and_recorded_per_run() {
        fn fetch(batch: Batch) -> Result<Outcome, Error> {
            let mut outcome = Outcome::ack_all();
            for msg in &batch {
                let response = crate::http::Request::get(msg.body_str()?)
                    .header("X-From", msg.id())
                    .timeout(Duration::from_secs(1))
                    .send();
                match response {
                    Ok(response) if response.is_success() => {}
                    Ok(response) => {
                        outcome.dead_letter(msg, format!("HTTP {}", response.status()));
                    }
                    Err(error) => {
                        outcome.dead_letter(msg, error);
                    }
                }
            }
            Ok(outcome)
        }
        let reason = |report: &Report, id| match report.disposition(id) {
            Some(Disposition::DeadLetter(reason)) => reason.clone(),
            other => panic!("{id}: {other:?}"),
        };

        let report = Harness::new()
            .http(stub("https://a.example.com/ok"))
            .http(stub_prefix("https://a.example.com/").status(404))
            .http(stub_prefix("https://b.example.com/").denied())
            .run(
                fetch,
                [
                    message("https://a.example.com/ok"),
                    message("https://a.example.com/gone"),
                    message("https://b.example.com/"),
                    message("https://c.example.com/"),
                ],
            );
        assert_eq!(report.acked(), ["msg-1"]);
        assert_eq!(reason(&report, "msg-2"), "HTTP 404");
        assert!(reason(&report, "msg-3").contains("denied by the host"));
        assert!(
            reason(&report, "msg-4").starts_with("no HTTP stub matches GET https://c.example.com/")
        );
        let requests = report.requests();
        assert_eq!(requests.len(), 4, "denied and unstubbed requests too");
        assert_eq!(requests[2].header("x-from"), Some("msg-3"));
        assert_eq!(requests[0].timeout, Some(Duration::from_secs(1)));

        let again = run(fetch, [message("https://a.example.com/ok")]);
        assert_eq!(again.requests().len(), 1, "runs are isolated");
        assert!(
            reason(&again, "msg-1").starts_with("no HTTP stub matches"),
            "stubs do not leak into the next run"
        );
    }

    #[test]
    fn state_commits_on_ok_only_and_runs_read_what_was_committed() {
        fn count(batch: Batch) -> Result<Outcome, Error> {
            let counts = crate::kv::open("counts")?;
            let mut outcome = Outcome::ack_all();
            for msg in &batch {
                let n = counts.increment("n", 1)?;
                assert_eq!(counts.get("n")?.unwrap(), n.to_string().as_bytes());
                counts.set_json(msg.id(), &n)?;
                match msg.body() {
                    b"error" => return Err(Error::new("asked to fail")),
                    b"panic" => panic!("asked to panic"),
                    b"retry" => {
                        outcome.retry(msg);
                    }
                    _ => {}
                }
            }
            Ok(outcome)
        }
        let harness = Harness::new().bucket("counts");
        let report = harness.run(count, [message("a"), message("b")]);
        assert!(report.is_ok());
        assert_eq!(harness.get("counts", "n").unwrap(), b"2");

        for failing in ["error", "panic"] {
            let report = harness.run(count, [message("a"), message(failing)]);
            assert!(!report.is_ok());
            assert_eq!(
                report.kv_writes().len(),
                3,
                "n, msg-1 and msg-2 were written"
            );
            assert!(report.committed_kv_writes().is_empty());
            assert_eq!(
                harness.get("counts", "n").unwrap(),
                b"2",
                "a failed batch ({failing}) left no writes"
            );
        }

        // `Ok` with a message retried still commits every write, as the host does.
        let report = harness.run(count, [message("retry")]);
        assert_eq!(report.committed_kv_writes().len(), 2);
        assert_eq!(harness.get("counts", "n").unwrap(), b"3");
        assert_eq!(harness.keys("counts"), ["msg-1", "msg-2", "n"]);

        let denied = Harness::new().bucket("other").run(count, [message("a")]);
        assert!(matches!(
            denied.error().unwrap().message(),
            m if m.starts_with("bucket `counts` is not listed for this function")
        ));
        assert_eq!(
            run(count, [message("a")]).kv_writes().len(),
            2,
            "runs start empty"
        );
    }

    #[test]
    fn deletes_hide_committed_keys_from_reads_and_listings() {
        let harness = Harness::new().kv("b", "x", "1").kv("b", "y", "2");
        let report = harness.run(
            |_| {
                let bucket = crate::kv::open("b")?;
                bucket.delete("x")?;
                bucket.set("z", "3")?;
                assert!(!bucket.exists("x")?);
                assert_eq!(bucket.list_keys(None)?.keys, ["y", "z"]);
                let read = bucket.cas("y")?;
                assert_eq!(read.current(), Some(&b"2"[..]));
                read.swap("20")?;
                Ok(Outcome::ack_all())
            },
            [message("a")],
        );
        assert!(report.is_ok(), "{:?}", report.result());
        assert_eq!(harness.keys("b"), ["y", "z"]);
        assert_eq!(harness.get("b", "y").unwrap(), b"20");
    }

    #[test]
    fn explicit_ids_are_kept() {
        let report = run(echo, [message("a").id("first"), message("b")]);
        assert_eq!(report.acked(), ["first", "msg-2"]);
    }
}
