//! Why a store operation failed: one enum every backend returns and the API maps to statuses.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("queue `{0}` does not exist")]
    QueueNotFound(String),
    #[error("queue `{0}` already exists")]
    QueueExists(String),
    #[error("invalid queue name `{name}`: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("invalid queue settings: {0}")]
    InvalidSettings(String),
    #[error("topic `{0}` does not exist")]
    TopicNotFound(String),
    #[error("topic `{0}` already exists")]
    TopicExists(String),
    #[error("invalid topic: {0}")]
    InvalidTopic(String),
    #[error("queue `{queue}` does not subscribe to topic `{topic}`")]
    SubscriptionNotFound { topic: String, queue: String },
    #[error("queue `{queue}` subscribes to topic `{topic}`; delete that subscription first")]
    QueueSubscribed { queue: String, topic: String },
    /// A message's priority or group is out of range.
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    #[error(
        "queue `{queue}` is the dead-letter queue of `{used_by}`; change or delete `{used_by}` first"
    )]
    QueueInUse { queue: String, used_by: String },
    #[error("message of {size} bytes exceeds queue `{queue}`'s limit of {limit} bytes")]
    MessageTooLarge {
        queue: String,
        size: usize,
        limit: usize,
    },
    #[error("queue `{queue}` is full ({max_depth} messages); retry after consumers catch up")]
    QueueFull { queue: String, max_depth: u64 },
    #[error("token `{0}` does not exist")]
    TokenNotFound(String),
    #[error("schedule `{0}` does not exist")]
    ScheduleNotFound(String),
    #[error(
        "queue `{queue}` is where schedule `{schedule}` enqueues; delete that schedule (or point \
         it at another queue) first"
    )]
    QueueScheduled { queue: String, schedule: String },
    #[error("function `{0}` does not exist")]
    FunctionNotFound(String),
    #[error(
        "queue `{queue}` is consumed by function `{function}`; delete that function's trigger \
         first (`sluice functions untrigger {function}`)"
    )]
    QueueHasConsumer { queue: String, function: String },
    /// The database was written by a newer Sluice.
    #[error(
        "the database at {location} was written by a newer Sluice (schema {found}; this one understands {supported}); upgrade Sluice"
    )]
    NewerSchema {
        location: String,
        found: usize,
        supported: usize,
    },
    /// A window or bucket of invocation stats out of bounds.
    #[error("invalid stats query: {0}")]
    InvalidStatsQuery(String),
    #[error("invalid cursor `{0}`: pass the id of the last message of the previous page")]
    InvalidCursor(String),
    #[error("component {0} is not stored; upload the function again")]
    ComponentNotFound(String),
    #[error("function `{name}` has no version {version}")]
    VersionNotFound { name: String, version: u32 },
    #[error("bucket `{0}` does not exist; create it with `PUT /v1/kv/{0}`")]
    BucketNotFound(String),
    /// A bucket name, key, value or expiry out of bounds.
    #[error("invalid key-value request: {0}")]
    InvalidKv(String),
    /// A settle's state writes cannot commit as they are (a compare-and-swap whose key changed,
    /// an increment of a value that is no counter, a lease lost): nothing of the settle was
    /// committed, and the batch should be retried.
    #[error("state conflict: {0}")]
    StateConflict(String),
    /// The database cannot be written or read (disk full, read-only, I/O error).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The file where the database should be is not a Sluice database.
    #[error(
        "{path} is not a Sluice database ({reason}); move it away or choose another --data-dir"
    )]
    Corrupt { path: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
