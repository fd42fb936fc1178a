//! Unit tests of the store's operations and errors, on a real database in a temp dir with a
//! manual clock.

use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;

use super::sqlite::{SqliteBackend, messages, schema, sql};
use super::*;
use sluice_test_support::testdb::TestDatabase;

const T0: u64 = 1_700_000_000_000;

struct Fixture {
    dir: TempDir,
    store: Store,
    clock: Arc<ManualClock>,
    /// Last, so the store's connections close before the database is dropped.
    _db: Option<TestDatabase>,
}

fn open() -> Fixture {
    let dir = TempDir::new().expect("temp dir");
    let clock = Arc::new(ManualClock::new(T0));
    let store =
        Store::open_with_clock(dir.path(), StoreOptions::default(), clock.clone()).expect("open");
    Fixture {
        dir,
        store,
        clock,
        _db: None,
    }
}

/// A SQLite store, and its backend for tests that reach SQLite itself.
fn open_sqlite() -> (Fixture, Arc<SqliteBackend>) {
    let dir = TempDir::new().expect("temp dir");
    let clock = Arc::new(ManualClock::new(T0));
    let events = Arc::new(Events::default());
    let sqlite = Arc::new(
        SqliteBackend::open(
            dir.path(),
            StoreOptions::default(),
            clock.clone(),
            events.clone(),
        )
        .expect("open"),
    );
    let fixture = Fixture {
        store: Store::with_backend(sqlite.clone(), events, clock.clone()).expect("store"),
        dir,
        clock,
        _db: None,
    };
    (fixture, sqlite)
}

/// A store on a fresh PostgreSQL database, dropped with the fixture.
async fn open_postgres() -> Fixture {
    let db = TestDatabase::create().await;
    let clock = Arc::new(ManualClock::new(T0));
    let store = Store::connect_postgres(&db.url, StoreOptions::default(), clock.clone())
        .await
        .expect("connect");
    Fixture {
        dir: TempDir::new().expect("temp dir"),
        store,
        clock,
        _db: Some(db),
    }
}

/// Runs each named contract test against every backend: `sqlite::NAME` and `postgres::NAME`,
/// so a difference between the backends is a failing test.
macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::open()).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::open_postgres().await).await
                }
            )*
        }
    };
}

contract_tests!(
    chosen_dead_letters_are_redriven_or_deleted_one_by_one,
    dead_letter_cycles_are_refused,
    lease_cap_counts_live_leases,
    a_raised_cap_adds_places_and_an_empty_lease_takes_none,
    settle_logged_commits_the_invocation_with_the_batch,
    the_log_keeps_a_function_within_its_byte_budget,
    a_settle_leases_the_next_batch_in_its_commit,
    ids_are_never_reused,
    reads_of_missing_queues_fail,
    queue_names_and_settings_are_validated,
    update_queue_replaces_settings,
    enqueue_lease_ack,
    dedup_returns_the_original_id,
    delayed_messages_wait,
    visible_count_is_capped,
    a_lull_reads_what_is_visible_and_what_comes_due,
    expired_lease_is_redelivered_and_the_old_ack_is_stale,
    the_first_lease_time_is_kept_across_redeliveries,
    lease_visibility_override,
    retry_then_dead_letter_with_attributes,
    explicit_dead_letter_and_drop_without_dlq,
    lease_dead_letters_messages_out_of_attempts,
    redrive_moves_back_with_attempts_reset,
    settle_is_all_or_nothing,
    enqueue_is_all_or_nothing_and_size_checked,
    queues_in_use_cannot_be_deleted,
    purge_deletes_everything,
    retention_expires_old_messages,
    notifier_wakes_on_visible_messages,
    another_host_wakes_on_enqueues_and_sends,
    an_enqueue_racing_a_queue_delete_leaves_nothing_behind,
    functions_and_triggers,
    counters_add_up,
    schedules_fire_each_tick_once,
    tokens_keep_their_sqs_secret,
    higher_priorities_go_first_and_every_priority_gets_turns,
    a_group_goes_one_message_at_a_time_in_order,
    a_released_group_head_goes_before_a_backlog_already_being_drained,
    a_message_sorting_before_the_last_lease_is_still_delivered,
    topics_fan_out_through_filters_all_or_nothing,
    a_replay_meets_live_publishing_without_gap_or_duplicate,
    a_settle_publishes_with_its_ack_or_not_at_all,
    a_reply_commits_only_with_its_messages_ack_and_expires,
    a_waiting_producer_wakes_on_the_reply_or_times_out,
    topic_names_follow_topic_changes,
    the_running_sweep_applies_every_retention,
    buckets_are_created_changed_listed_and_deleted,
    state_commits_with_the_ack_all_or_nothing,
    a_stale_settle_writes_no_state_and_acks_nothing,
    a_compare_and_swap_conflict_fails_the_whole_settle,
    expired_keys_are_hidden_and_keys_page_by_prefix,
    operator_writes_are_validated_and_commit_at_once,
    concurrent_increments_never_lose_an_update,
    dead_letters_are_peeked_and_counted_by_reason,
    invocation_stats_bucket_counts_errors_and_percentiles,
);

impl Fixture {
    /// How many rows `table` holds, read from the database itself (not through the store,
    /// whose reads hide what has expired).
    async fn rows(&self, table: &str) -> u64 {
        let sql = format!("SELECT count(*) FROM {table}");
        match &self._db {
            Some(db) => {
                let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
                    .await
                    .expect("connect");
                tokio::spawn(connection);
                let row = client.query_one(&sql, &[]).await.expect("count");
                row.get::<_, i64>(0) as u64
            }
            None => {
                let path = self.dir.path().join("sluice.db");
                let conn = rusqlite::Connection::open_with_flags(
                    path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .expect("open read-only");
                conn.query_row(&sql, [], |r| r.get::<_, i64>(0))
                    .expect("count") as u64
            }
        }
    }
}

/// Retention is the running host's job, on both backends: its periodic sweep (never
/// `expire_now`) forgets everything the store keeps for a time once that time has passed:
/// queue messages, dedup ids, topic history, replies, keys of buckets with an expiry and the
/// invocation log (by age, even while nothing new is logged).
async fn the_running_sweep_applies_every_retention(f: Fixture) {
    f.queue("q", QueueSettings::default()).await;
    f.store.create_topic("t", 60_000).await.unwrap();
    f.store
        .publish("t", vec![msg("1"), msg("2"), msg("3")])
        .await
        .unwrap();
    f.store.enqueue("q", vec![msg("a")]).await.unwrap();
    let lease = f.lease("q", 10).await;
    let a = lease.messages[0].id.clone();
    let settlement = Settlement {
        ack: vec![a.clone()],
        replies: vec![reply_to(&a, "for a")],
        ..Settlement::default()
    };
    f.store.settle(&lease, settlement).await.unwrap();
    let kept = NewMessage {
        dedup_id: Some("once".into()),
        ..msg("kept too long")
    };
    f.store.enqueue("q", vec![kept]).await.unwrap();
    f.store.put_bucket("short", Some(60_000)).await.unwrap();
    f.store
        .kv_write(vec![set("short", "k", "v")])
        .await
        .unwrap();
    let logged = InvocationEntry {
        started_at_ms: f.store.now_ms(),
        ..invocation("f")
    };
    f.store
        .record_invocations(
            vec![logged],
            InvocationRetention {
                max_age_ms: u64::MAX,
                max_per_function: 100,
                max_bytes_per_function: u64::MAX,
            },
        )
        .await
        .unwrap();
    let tables = [
        "messages",
        "dedup",
        "topic_messages",
        "replies",
        "invocations",
        "kv_keys",
    ];
    for table in tables {
        assert!(f.rows(table).await > 0, "{table} holds nothing to forget");
    }

    // Past every retention: the queue's (4 days), the log's (7 days by default), and the
    // shorter ones of dedup ids, topic history and replies.
    f.clock
        .advance(StoreOptions::default().log_max_age_ms() + REPLY_RETENTION_MS + 1);
    let mut left = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        left.clear();
        for table in tables {
            let rows = f.rows(table).await;
            if rows > 0 {
                left.push((table, rows));
            }
        }
        if left.is_empty() {
            break;
        }
        // The sweep runs on the host's own schedule; look again shortly.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        left.is_empty(),
        "still kept after every retention: {left:?}"
    );
}

/// The cached topic names (what handlers' publishes are checked against) see every topic
/// created or deleted, without a reload.
async fn topic_names_follow_topic_changes(f: Fixture) {
    assert!(f.store.topic_names().await.unwrap().is_empty());
    f.store.create_topic("a", 60_000).await.unwrap();
    f.store.create_topic("b", 60_000).await.unwrap();
    let names = f.store.topic_names().await.unwrap();
    assert!(names.contains("a") && names.contains("b"), "{names:?}");
    // Cached until a topic changes. On PostgreSQL this host's own commits also come back
    // through LISTEN a moment later and drop the cache once more; once they have, it holds.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut cached = false;
    while !cached && std::time::Instant::now() < deadline {
        let first = f.store.topic_names().await.unwrap();
        cached = Arc::ptr_eq(&first, &f.store.topic_names().await.unwrap());
        if !cached {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert!(cached, "the topic names are read again without a change");
    f.store.delete_topic("a").await.unwrap();
    let names = f.store.topic_names().await.unwrap();
    assert_eq!(names.iter().collect::<Vec<_>>(), ["b"]);
}

/// A handler's publishes commit with the batch's ack: a missing topic fails the whole
/// settlement, and the message stays leased, not acked.
async fn a_settle_publishes_with_its_ack_or_not_at_all(f: Fixture) {
    f.queue("in", QueueSettings::default()).await;
    f.queue("sub", QueueSettings::default()).await;
    f.store.create_topic("t", 60_000).await.unwrap();
    f.store
        .subscribe("t", "sub", serde_json::json!({}), ReplayFrom::Latest)
        .await
        .unwrap();
    f.store.enqueue("in", vec![msg("a")]).await.unwrap();
    let lease = f.lease("in", 10).await;
    let bad = Settlement {
        publish: vec![("t".into(), msg("x")), ("nope".into(), msg("y"))],
        ..ack_all(&lease)
    };
    let err = f.store.settle(&lease, bad).await.unwrap_err();
    assert!(matches!(err, Error::TopicNotFound(_)), "{err}");
    assert_eq!(f.stats("in").await.in_flight, 1);
    assert_eq!(f.stats("sub").await.visible, 0);
    let good = Settlement {
        publish: vec![("t".into(), msg("x")), ("t".into(), msg("y"))],
        ..ack_all(&lease)
    };
    let settled = f.store.settle(&lease, good).await.unwrap();
    assert_eq!((settled.acked, settled.published), (1, 2));
    assert_eq!(seqs(&f.store.peek("sub", 10, None).await.unwrap()), [1, 2]);
}

fn reply_to(id: &str, body: &str) -> NewReply {
    NewReply {
        message_id: id.to_owned(),
        body: body.as_bytes().to_vec(),
        attributes: vec![("k".into(), "v".into())],
    }
}

/// A reply commits with the ack of the message it answers: a retried or dead-lettered
/// message's reply, or one whose lease was lost, is discarded. It is kept for its retention,
/// then swept.
async fn a_reply_commits_only_with_its_messages_ack_and_expires(f: Fixture) {
    f.queue("q", QueueSettings::default()).await;
    f.store
        .enqueue("q", vec![msg("a"), msg("b"), msg("c")])
        .await
        .unwrap();
    let lease = f.lease("q", 10).await;
    let [a, b, c] = [0, 1, 2].map(|i| lease.messages[i].id.clone());
    let settlement = Settlement {
        ack: vec![a.clone()],
        retry: vec![Retry {
            id: b.clone(),
            delay_ms: 0,
            error: "again".into(),
        }],
        dead_letter: vec![DeadLetter {
            id: c.clone(),
            reason: "bad".into(),
        }],
        replies: vec![
            reply_to(&a, "for a"),
            reply_to(&b, "for b"),
            reply_to(&c, "for c"),
        ],
        ..Settlement::default()
    };
    let settled = f.store.settle(&lease, settlement).await.unwrap();
    assert_eq!((settled.acked, settled.replied), (1, 1));
    let reply = f.store.reply(&a).await.unwrap().expect("a's reply");
    assert_eq!(
        (
            reply.queue.as_str(),
            reply.body.as_slice(),
            reply.replied_at_ms
        ),
        ("q", b"for a".as_slice(), f.clock.now_ms())
    );
    assert_eq!(reply.attributes, [("k".to_owned(), "v".to_owned())]);
    assert_eq!(f.store.reply(&b).await.unwrap(), None, "retried: discarded");
    assert_eq!(
        f.store.reply(&c).await.unwrap(),
        None,
        "dead-lettered: discarded"
    );

    // b comes back; a stale settle (its old lease) replies nothing.
    let again = f.lease("q", 10).await;
    assert_eq!(again.messages[0].id, b);
    let stale = Settlement {
        ack: vec![b.clone()],
        replies: vec![reply_to(&b, "stale")],
        ..Settlement::default()
    };
    let settled = f.store.settle(&lease, stale).await.unwrap();
    assert_eq!((settled.acked, settled.replied), (0, 0));
    assert_eq!(f.store.reply(&b).await.unwrap(), None);

    f.clock.advance(REPLY_RETENTION_MS - 1);
    f.store.expire_now().await.unwrap();
    assert!(
        f.store.reply(&a).await.unwrap().is_some(),
        "kept for its retention"
    );
    f.clock.advance(1);
    assert_eq!(
        f.store.reply(&a).await.unwrap(),
        None,
        "expired, even before the sweep"
    );
    f.store.expire_now().await.unwrap();
    assert_eq!(f.store.reply(&a).await.unwrap(), None);
}

/// A producer waiting for a reply wakes when the settle that stores it commits, and a wait
/// with no reply ends at its deadline with none.
async fn a_waiting_producer_wakes_on_the_reply_or_times_out(f: Fixture) {
    f.queue("q", QueueSettings::default()).await;
    f.store.enqueue("q", vec![msg("a")]).await.unwrap();
    let lease = f.lease("q", 10).await;
    let id = lease.messages[0].id.clone();
    let none = f
        .store
        .wait_reply(&id, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(none, None);
    let waiting = {
        let (store, id) = (f.store.clone(), id.clone());
        tokio::spawn(async move { store.wait_reply(&id, Duration::from_secs(30)).await })
    };
    let settlement = Settlement {
        replies: vec![reply_to(&id, "done")],
        ..ack_all(&lease)
    };
    f.store.settle(&lease, settlement).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("woken by the commit, long before its own deadline")
        .unwrap()
        .unwrap()
        .expect("the reply");
    assert_eq!(reply.body, b"done");
}

fn seqs(messages: &[Message]) -> Vec<u64> {
    messages
        .iter()
        .map(|m| attr(m, topics::ATTR_TOPIC_SEQ).unwrap().parse().unwrap())
        .collect()
}

fn with_attrs(body: &str, attrs: &[(&str, &str)]) -> NewMessage {
    NewMessage {
        attributes: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..msg(body)
    }
}

/// Publishing copies each message into every subscribed queue whose filter it passes, in the
/// same commit: a copy that cannot be made (too large for one queue) publishes nothing.
async fn topics_fan_out_through_filters_all_or_nothing(f: Fixture) {
    for q in ["all", "orders", "eu"] {
        f.queue(q, QueueSettings::default()).await;
    }
    f.queue(
        "small",
        QueueSettings {
            max_message_bytes: 64,
            ..QueueSettings::default()
        },
    )
    .await;
    let err = f.store.create_topic("t", 0).await.unwrap_err();
    assert!(matches!(err, Error::InvalidTopic(_)), "{err}");
    f.store.create_topic("t", 60_000).await.unwrap();
    let err = f.store.create_topic("t", 60_000).await.unwrap_err();
    assert!(matches!(err, Error::TopicExists(_)), "{err}");
    let filter = |v: serde_json::Value| v;
    for (queue, f_) in [
        ("all", filter(serde_json::json!({}))),
        ("orders", filter(serde_json::json!({"kind": "order"}))),
        (
            "eu",
            filter(serde_json::json!({"region": {"prefix": "eu-"}})),
        ),
        (
            "small",
            filter(serde_json::json!({"size": {"exists": true}})),
        ),
    ] {
        f.store
            .subscribe("t", queue, f_, ReplayFrom::Latest)
            .await
            .unwrap();
    }
    let err = f
        .store
        .subscribe("t", "all", serde_json::json!({"a": 1}), ReplayFrom::Latest)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidTopic(_)), "{err}");
    let err = f
        .store
        .subscribe("t", "missing", serde_json::json!({}), ReplayFrom::Latest)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::QueueNotFound(_)), "{err}");

    let published = f
        .store
        .publish(
            "t",
            vec![
                with_attrs("1", &[("kind", "order"), ("region", "eu-west")]),
                with_attrs("2", &[("kind", "refund"), ("region", "us-east")]),
                with_attrs("3", &[("kind", "order")]),
                with_attrs("4", &[("region", "eu-north"), ("size", "s")]),
            ],
        )
        .await
        .unwrap();
    let copies: Vec<(u64, u64)> = published.iter().map(|p| (p.seq, p.copies)).collect();
    assert_eq!(copies, [(1, 3), (2, 1), (3, 2), (4, 3)]);
    for (queue, want) in [
        ("all", vec![1, 2, 3, 4]),
        ("orders", vec![1, 3]),
        ("eu", vec![1, 4]),
        ("small", vec![4]),
    ] {
        let got = f.store.peek(queue, 10, None).await.unwrap();
        assert_eq!(seqs(&got), want, "{queue}");
        assert!(got.iter().all(|m| attr(m, topics::ATTR_TOPIC) == Some("t")));
    }

    // Too large for `small`: no queue gets it, and the topic does not keep it.
    let big = with_attrs(&"x".repeat(100), &[("size", "l")]);
    let err = f
        .store
        .publish("t", vec![msg("ok"), big])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MessageTooLarge { .. }), "{err}");
    assert_eq!(f.store.get_topic("t").await.unwrap().head, 4);
    assert_eq!(f.stats("all").await.visible, 4);
    let err = f.store.publish("nope", vec![msg("x")]).await.unwrap_err();
    assert!(matches!(err, Error::TopicNotFound(_)), "{err}");

    // A subscribed queue is kept; deleting the topic lets it go.
    let err = f.store.delete_queue("orders").await.unwrap_err();
    assert!(matches!(err, Error::QueueSubscribed { .. }), "{err}");
    f.store.unsubscribe("t", "orders").await.unwrap();
    let err = f.store.unsubscribe("t", "orders").await.unwrap_err();
    assert!(matches!(err, Error::SubscriptionNotFound { .. }), "{err}");
    f.store.purge("orders").await.unwrap();
    f.store.delete_queue("orders").await.unwrap();
    f.store.delete_topic("t").await.unwrap();
    assert!(f.store.list_topics().await.unwrap().is_empty());
    f.store.purge("all").await.unwrap();
    f.store.delete_queue("all").await.unwrap();
}

/// A subscription from `earliest` replays the history in order, chunk by chunk, while
/// messages keep being published; then it follows live: every message once, in order. One
/// from a time starts there; history past the retention is gone.
async fn a_replay_meets_live_publishing_without_gap_or_duplicate(f: Fixture) {
    f.queue("live", QueueSettings::default()).await;
    f.queue("replay", QueueSettings::default()).await;
    f.queue("later", QueueSettings::default()).await;
    f.store.create_topic("t", 60_000).await.unwrap();
    f.store
        .subscribe("t", "live", serde_json::json!({}), ReplayFrom::Latest)
        .await
        .unwrap();
    let batch = |n: usize| (0..n).map(|i| msg(&i.to_string())).collect::<Vec<_>>();
    f.store.publish("t", batch(1_100)).await.unwrap();
    f.clock.advance(10_000);
    let from = f.clock.now_ms();
    f.store.publish("t", batch(50)).await.unwrap();

    f.store
        .subscribe("t", "replay", serde_json::json!({}), ReplayFrom::Earliest)
        .await
        .unwrap();
    f.store
        .subscribe("t", "later", serde_json::json!({}), ReplayFrom::Time(from))
        .await
        .unwrap();
    assert_eq!(
        f.store.lagging_subscriptions().await.unwrap(),
        [
            ("t".to_owned(), "later".to_owned()),
            ("t".into(), "replay".into())
        ]
    );
    // Catch-up and publishing interleave.
    let mut rounds = 0;
    while !f.store.catch_up("t", "replay").await.unwrap() {
        f.store.publish("t", batch(7)).await.unwrap();
        rounds += 1;
    }
    assert!(rounds >= 2, "the replay took {rounds} chunks");
    assert!(f.store.catch_up("t", "later").await.unwrap());
    f.store.publish("t", batch(5)).await.unwrap();
    assert!(f.store.lagging_subscriptions().await.unwrap().is_empty());
    let head = f.store.get_topic("t").await.unwrap().head;
    let all = |q: &'static str| {
        let store = f.store.clone();
        async move {
            let mut out = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = store.peek(q, 1_000, after.as_deref()).await.unwrap();
                let Some(last) = page.last() else { break };
                after = Some(last.id.clone());
                out.extend(seqs(&page));
            }
            out
        }
    };
    let expected: Vec<u64> = (1..=head).collect();
    assert_eq!(all("replay").await, expected);
    assert_eq!(all("live").await, expected);
    assert_eq!(all("later").await, (1_101..=head).collect::<Vec<_>>());

    // Past the retention, the history is gone: a new replay finds nothing to copy.
    f.clock.advance(61_000);
    f.store.expire_now().await.unwrap();
    f.queue("late", QueueSettings::default()).await;
    f.store
        .subscribe("t", "late", serde_json::json!({}), ReplayFrom::Earliest)
        .await
        .unwrap();
    assert!(f.store.catch_up("t", "late").await.unwrap());
    assert!(f.store.peek("late", 10, None).await.unwrap().is_empty());
}

fn prioritized(body: &str, priority: u8) -> NewMessage {
    NewMessage {
        priority,
        ..msg(body)
    }
}

/// A group's next message keeps its place in delivery order (its enqueue time) when it is
/// released, even behind where this host's last leases of a long backlog began (PostgreSQL's
/// lease marks: see `postgres::marks`).
async fn a_released_group_head_goes_before_a_backlog_already_being_drained(f: Fixture) {
    f.queue("q", QueueSettings::default()).await;
    let enqueue = |messages| f.store.enqueue("q", messages);
    enqueue(vec![grouped("g1", "g"), grouped("g2", "g")])
        .await
        .unwrap();
    f.clock.advance(1_000);
    enqueue(["b1", "b2", "b3", "b4"].map(msg).to_vec())
        .await
        .unwrap();
    let head = f.lease("q", 1).await;
    assert_eq!(bodies(&head), ["g1"]);
    assert_eq!(bodies(&f.lease("q", 2).await), ["b1", "b2"]);
    f.store.settle(&head, ack_all(&head)).await.unwrap();
    assert_eq!(
        bodies(&f.lease("q", 1).await),
        ["g2"],
        "released head first"
    );
}

/// A message that sorts before the first one the last lease took (enqueued by a host whose
/// clock is behind, here the clock set back) is still delivered, however the backend chose
/// where its leases start reading.
async fn a_message_sorting_before_the_last_lease_is_still_delivered(f: Fixture) {
    f.queue("q", QueueSettings::default()).await;
    let later = T0 + 10_000;
    f.clock.set(later);
    f.store
        .enqueue("q", ["b1", "b2", "b3", "b4"].map(msg).to_vec())
        .await
        .unwrap();
    let first = f.lease("q", 2).await;
    assert_eq!(bodies(&first), ["b1", "b2"]);
    f.store.settle(&first, ack_all(&first)).await.unwrap();
    f.clock.set(T0);
    f.store.enqueue("q", vec![msg("behind")]).await.unwrap();
    f.clock.set(later);
    let mut delivered = Vec::new();
    while let Some(lease) = f.store.lease("q", 2, None).await.unwrap() {
        delivered.extend(bodies(&lease));
        f.store.settle(&lease, ack_all(&lease)).await.unwrap();
    }
    delivered.sort();
    assert_eq!(delivered, ["b3", "b4", "behind"]);
    assert_eq!(f.stats("q").await.visible, 0);
}

fn grouped(body: &str, group: &str) -> NewMessage {
    NewMessage {
        group: Some(group.into()),
        ..msg(body)
    }
}

fn bodies(lease: &Lease) -> Vec<String> {
    lease
        .messages
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect()
}

/// A lease takes higher priorities first, then enqueue order; one lease in ten serves one
/// priority out of turn, so a low priority cannot wait forever behind a stream of high ones.
async fn higher_priorities_go_first_and_every_priority_gets_turns(f: Fixture) {
    f.queue("q", QueueSettings::default()).await;
    let err = f
        .store
        .enqueue("q", vec![prioritized("x", 10)])
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidMessage(ref m) if m.contains("0 (lowest)")),
        "{err}"
    );
    let err = f
        .store
        .enqueue("q", vec![grouped("x", "")])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidMessage(_)), "{err}");

    f.store
        .enqueue(
            "q",
            vec![
                prioritized("low1", 0),
                msg("mid1"),
                prioritized("high1", 9),
                prioritized("low2", 0),
                prioritized("high2", 9),
                prioritized("seven", 7),
            ],
        )
        .await
        .unwrap();
    let lease = f.lease("q", 4).await;
    assert_eq!(bodies(&lease), ["high1", "high2", "seven", "mid1"]);
    assert_eq!(lease.messages[0].priority, 9);
    assert_eq!(lease.messages[3].priority, DEFAULT_PRIORITY);
    f.store.settle(&lease, ack_all(&lease)).await.unwrap();
    let lease = f.lease("q", 10).await;
    assert_eq!(bodies(&lease), ["low1", "low2"]);
    f.store.settle(&lease, ack_all(&lease)).await.unwrap();

    // A steady stream of high priorities: lease number 10 (the 10th of this store for the
    // queue, after the two above) serves priority 0 first.
    f.store
        .enqueue("q", vec![prioritized("starving", 0)])
        .await
        .unwrap();
    let mut taken = Vec::new();
    for turn in 2..FAVOURED_TURN {
        f.store
            .enqueue("q", vec![prioritized("urgent", 9)])
            .await
            .unwrap();
        let lease = f.lease("q", 1).await;
        taken.push((turn, bodies(&lease).remove(0)));
        f.store.settle(&lease, ack_all(&lease)).await.unwrap();
    }
    let starving: Vec<u64> = taken
        .iter()
        .filter(|(_, body)| body == "starving")
        .map(|(turn, _)| *turn)
        .collect();
    assert_eq!(starving, [FAVOURED_TURN - 1], "{taken:?}");
    assert_eq!(favoured_priority(FAVOURED_TURN - 1), Some(0));
    assert_eq!(favoured_priority(2 * FAVOURED_TURN - 1), Some(1));
    assert_eq!(favoured_priority(100 * FAVOURED_TURN - 1), Some(9));
    assert_eq!(favoured_priority(FAVOURED_TURN), None);
}

/// A group's messages are delivered one at a time in enqueue order; a message that fails holds
/// its group (other groups and ungrouped messages go on) until it is acked, dead-lettered,
/// deleted or expired.
async fn a_group_goes_one_message_at_a_time_in_order(f: Fixture) {
    f.queue("dlq", QueueSettings::default()).await;
    f.queue(
        "q",
        QueueSettings {
            dead_letter_queue: Some("dlq".into()),
            retention_ms: 10_000,
            ..QueueSettings::default()
        },
    )
    .await;
    f.store
        .enqueue(
            "q",
            vec![
                grouped("a1", "a"),
                grouped("a2", "a"),
                grouped("b1", "b"),
                msg("u1"),
                grouped("a3", "a"),
                grouped("b2", "b"),
            ],
        )
        .await
        .unwrap();
    // Messages waiting behind their group's head count as visible.
    assert_eq!(f.stats("q").await.visible, 6);
    assert_eq!(f.store.visible_count("q", 10).await.unwrap(), 3);
    let first = f.lease("q", 10).await;
    assert_eq!(bodies(&first), ["a1", "b1", "u1"]);
    assert_eq!(first.messages[0].group.as_deref(), Some("a"));
    assert!(f.store.lease("q", 10, None).await.unwrap().is_none());

    // a1 fails and comes back before a2; b1's ack lets b2 go.
    let retry_a1 = Settlement {
        ack: vec![first.messages[1].id.clone(), first.messages[2].id.clone()],
        retry: vec![Retry {
            id: first.messages[0].id.clone(),
            delay_ms: 0,
            error: "boom".into(),
        }],
        ..Settlement::default()
    };
    f.store.settle(&first, retry_a1).await.unwrap();
    let second = f.lease("q", 10).await;
    assert_eq!(bodies(&second), ["a1", "b2"]);
    assert_eq!(second.messages[0].attempt, 2);

    // Dead-lettering a1 lets a2 go; the dead letter keeps its group.
    let dead_a1 = Settlement {
        ack: vec![second.messages[1].id.clone()],
        dead_letter: vec![DeadLetter {
            id: second.messages[0].id.clone(),
            reason: "bad".into(),
        }],
        ..Settlement::default()
    };
    f.store.settle(&second, dead_a1).await.unwrap();
    let dead = f.store.peek("dlq", 10, None).await.unwrap();
    assert_eq!(dead[0].group.as_deref(), Some("a"));
    let third = f.lease("q", 10).await;
    assert_eq!(bodies(&third), ["a2"]);

    // A lease that expires keeps the group: a2 again, not a3.
    f.clock.advance(31_000);
    let fourth = f.lease("q", 10).await;
    assert_eq!(bodies(&fourth), ["a2"]);

    // Deleting the head lets the next go; a group emptied starts again at once.
    f.store
        .delete_messages("q", vec![fourth.messages[0].id.clone()])
        .await
        .unwrap();
    let fifth = f.lease("q", 10).await;
    assert_eq!(bodies(&fifth), ["a3"]);
    f.store.settle(&fifth, ack_all(&fifth)).await.unwrap();
    f.store
        .enqueue("q", vec![grouped("a4", "a")])
        .await
        .unwrap();
    assert_eq!(bodies(&f.lease("q", 10).await), ["a4"]);

    // Retention expiring a group's head lets the next go.
    f.store
        .enqueue("q", vec![grouped("c1", "c")])
        .await
        .unwrap();
    f.clock.advance(6_000);
    f.store
        .enqueue("q", vec![grouped("c2", "c")])
        .await
        .unwrap();
    f.clock.advance(5_000);
    f.store.expire_now().await.unwrap();
    let sixth = f.lease("q", 10).await;
    assert_eq!(bodies(&sixth), ["c2"]);
}

fn schedule(name: &str, queue: &str, next_tick_ms: u64) -> ScheduleRecord {
    ScheduleRecord {
        name: name.into(),
        cron: "* * * * * *".into(),
        timezone: "UTC".into(),
        queue: queue.into(),
        body: b"tick".to_vec(),
        attributes: vec![("kind".into(), "report".into())],
        next_tick_ms,
        created_at_ms: T0,
    }
}

/// A schedule is stored and read back as put; firing a tick moves it on and enqueues its
/// message in one commit, and a tick fired twice (two hosts, or a retry) enqueues once. Its
/// queue cannot be deleted while it points there.
async fn schedules_fire_each_tick_once(f: Fixture) {
    f.queue("q", QueueSettings::default()).await;
    let err = f
        .store
        .put_schedule(schedule("s", "missing", T0 + 1_000))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::QueueNotFound(_)), "{err}");
    let put = f
        .store
        .put_schedule(schedule("s", "q", T0 + 1_000))
        .await
        .unwrap();
    assert_eq!(put, schedule("s", "q", T0 + 1_000));
    assert_eq!(f.store.get_schedule("s").await.unwrap(), put);
    assert_eq!(f.store.list_schedules().await.unwrap(), vec![put.clone()]);

    let extra = vec![("sluice-schedule-tick".to_owned(), (T0 + 1_000).to_string())];
    let (first, second) = tokio::join!(
        f.store
            .fire_schedule("s", T0 + 1_000, T0 + 2_000, extra.clone()),
        f.store
            .fire_schedule("s", T0 + 1_000, T0 + 2_000, extra.clone()),
    );
    let fired: Vec<Enqueued> = [first.unwrap(), second.unwrap()]
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(fired.len(), 1, "one tick, one message: {fired:?}");
    assert_eq!(
        f.store.get_schedule("s").await.unwrap().next_tick_ms,
        T0 + 2_000
    );
    let queued = f.store.peek("q", 10, None).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].body, b"tick");
    assert_eq!(
        queued[0].attributes,
        vec![
            ("kind".to_owned(), "report".to_owned()),
            ("sluice-schedule-tick".to_owned(), (T0 + 1_000).to_string()),
        ]
    );
    // An old tick no longer fires.
    assert!(
        f.store
            .fire_schedule("s", T0 + 1_000, T0 + 2_000, vec![])
            .await
            .unwrap()
            .is_none()
    );

    // Replacing keeps the creation time; the queue is held until the schedule is gone.
    let replaced = f
        .store
        .put_schedule(ScheduleRecord {
            created_at_ms: T0 + 99,
            ..schedule("s", "q", T0 + 5_000)
        })
        .await
        .unwrap();
    assert_eq!(replaced.created_at_ms, T0);
    let err = f.store.delete_queue("q").await.unwrap_err();
    assert!(matches!(err, Error::QueueScheduled { .. }), "{err}");
    f.store.delete_schedule("s").await.unwrap();
    let err = f.store.delete_schedule("s").await.unwrap_err();
    assert!(matches!(err, Error::ScheduleNotFound(_)), "{err}");
    assert!(
        f.store
            .fire_schedule("s", T0 + 5_000, T0 + 6_000, vec![])
            .await
            .unwrap()
            .is_none()
    );
    f.store.purge("q").await.unwrap();
    f.store.delete_queue("q").await.unwrap();
}

fn msg(body: &str) -> NewMessage {
    NewMessage {
        body: body.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn ids(lease: &Lease) -> Vec<String> {
    lease.messages.iter().map(|m| m.id.clone()).collect()
}

fn attr<'a>(m: &'a Message, name: &str) -> Option<&'a str> {
    m.attributes
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn ack_all(lease: &Lease) -> Settlement {
    Settlement {
        ack: ids(lease),
        ..Default::default()
    }
}

impl Fixture {
    async fn queue(&self, name: &str, settings: QueueSettings) {
        self.store
            .create_queue(name, settings)
            .await
            .expect("create queue");
    }

    async fn stats(&self, name: &str) -> QueueStats {
        self.store.get_queue(name).await.expect("get queue").stats
    }

    async fn lease(&self, queue: &str, max: usize) -> Lease {
        self.store
            .lease(queue, max, None)
            .await
            .expect("lease")
            .expect("something visible")
    }
}

#[tokio::test]
async fn reopen_keeps_queues_and_messages() {
    let f = open();
    f.queue("q", QueueSettings::default()).await;
    let sent = f
        .store
        .enqueue("q", vec![msg("a"), msg("b")])
        .await
        .unwrap();
    assert_eq!(
        sent.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["1", "2"]
    );
    let Fixture {
        dir, store, clock, ..
    } = f;
    drop(store);
    let store = Store::open_with_clock(dir.path(), StoreOptions::default(), clock).unwrap();
    assert!(store.queue_exists("q"));
    assert!(!store.queue_exists("other"));
    let peeked = store.peek("q", 10, None).await.unwrap();
    assert_eq!(peeked.len(), 2);
    assert_eq!(peeked[0].body, b"a");
    assert_eq!(peeked[0].attempt, 0);
}

async fn tokens_keep_their_sqs_secret(f: Fixture) {
    let token = |id: &str, sqs_secret: Option<&str>| TokenRecord {
        id: id.into(),
        name: format!("token {id}"),
        hash: "ab".repeat(32),
        scopes: vec!["produce:q".into()],
        created_at_ms: T0,
        sqs_secret: sqs_secret.map(str::to_owned),
    };
    let plain = token("a1", None);
    let sqs = token("b2", Some("secret/with+chars"));
    f.store.add_token(plain.clone()).await.unwrap();
    f.store.add_token(sqs.clone()).await.unwrap();
    assert_eq!(f.store.list_tokens().await.unwrap(), vec![plain, sqs]);
    f.store.delete_token("b2").await.unwrap();
    assert_eq!(f.store.list_tokens().await.unwrap().len(), 1);
}

async fn ids_are_never_reused(f: Fixture) {
    f.queue("q", QueueSettings::default()).await;
    f.store.enqueue("q", vec![msg("a")]).await.unwrap();
    let lease = f.lease("q", 10).await;
    f.store.settle(&lease, ack_all(&lease)).await.unwrap();
    let again = f.store.enqueue("q", vec![msg("b")]).await.unwrap();
    assert_eq!(again[0].id, "2");
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_and_untouched() {
    for content in [&b"hello, this is not a database"[..], &[7u8; 4096][..]] {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("sluice.db");
        std::fs::write(&path, content).unwrap();
        let err = Store::open(dir.path(), StoreOptions::default()).expect_err("refused");
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), content);
        let entries = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(entries, 1, "no -wal or -shm files created");
    }
}

#[test]
fn a_foreign_sqlite_database_is_refused_and_untouched() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("sluice.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total INTEGER); INSERT INTO invoices VALUES (1, 5);")
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = Store::open(dir.path(), StoreOptions::default()).expect_err("refused");
    assert!(
        matches!(err, Error::Corrupt { ref reason, .. } if reason.contains("another application")),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn an_interrupted_creation_is_completed() {
    let dir = TempDir::new().unwrap();
    {
        // Our id on an otherwise empty database: what a crash during creation leaves behind.
        let conn = rusqlite::Connection::open(dir.path().join("sluice.db")).unwrap();
        conn.pragma_update(None, "application_id", schema::APPLICATION_ID)
            .unwrap();
    }
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    drop(store);
}

async fn reads_of_missing_queues_fail(f: Fixture) {
    assert!(matches!(
        f.store.peek("nope", 1, None).await,
        Err(Error::QueueNotFound(_))
    ));
    assert!(matches!(
        f.store.visible_count("nope", 1).await,
        Err(Error::QueueNotFound(_))
    ));
    assert!(matches!(
        f.store.next_visible_at_ms("nope").await,
        Err(Error::QueueNotFound(_))
    ));
    assert!(matches!(
        f.store.lease("nope", 1, None).await,
        Err(Error::QueueNotFound(_))
    ));
    assert!(matches!(
        f.store.purge("nope").await,
        Err(Error::QueueNotFound(_))
    ));
}

#[test]
fn a_database_from_a_newer_sluice_is_refused() {
    let dir = TempDir::new().unwrap();
    drop(Store::open(dir.path(), StoreOptions::default()).unwrap());
    {
        let conn = rusqlite::Connection::open(dir.path().join("sluice.db")).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    let err = Store::open(dir.path(), StoreOptions::default()).expect_err("refused");
    assert!(
        matches!(err, Error::Corrupt { ref reason, .. } if reason.contains("newer")),
        "{err}"
    );
}

async fn queue_names_and_settings_are_validated(f: Fixture) {
    let err = f
        .store
        .create_queue("no spaces", QueueSettings::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidName { .. }), "{err}");
    let err = f
        .store
        .create_queue(
            "q",
            QueueSettings {
                max_attempts: 0,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidSettings(_)), "{err}");
    let missing_dlq = QueueSettings {
        dead_letter_queue: Some("nowhere".into()),
        ..Default::default()
    };
    let err = f.store.create_queue("q", missing_dlq).await.unwrap_err();
    assert!(
        matches!(err, Error::InvalidSettings(ref m) if m.contains("nowhere")),
        "{err}"
    );
    assert!(!f.store.queue_exists("q"));
    f.queue("q", QueueSettings::default()).await;
    assert!(f.store.queue_exists("q"));
    let err = f
        .store
        .create_queue("q", QueueSettings::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::QueueExists(_)), "{err}");
    let err = f.store.enqueue("nope", vec![msg("x")]).await.unwrap_err();
    assert!(matches!(err, Error::QueueNotFound(_)), "{err}");
}

async fn update_queue_replaces_settings(f: Fixture) {
    f.queue("dlq", QueueSettings::default()).await;
    f.queue("q", QueueSettings::default()).await;
    let s = QueueSettings {
        max_attempts: 2,
        dead_letter_queue: Some("dlq".into()),
        // Kept as given, for the front end that owns it.
        extensions: [(
            "sqs".to_owned(),
            serde_json::json!({"tags": {"team": "a"}, "policy": "{}"}),
        )]
        .into(),
        ..Default::default()
    };
    let info = f.store.update_queue("q", s.clone()).await.unwrap();
    assert_eq!(info.settings, s);
    assert_eq!(f.store.get_queue("q").await.unwrap().settings, s);
    let err = f
        .store
        .update_queue("missing", QueueSettings::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::QueueNotFound(_)), "{err}");
}

async fn enqueue_lease_ack(f: Fixture) {
    f.queue("q", QueueSettings::default()).await;
    let attrs = vec![("k".to_string(), "v".to_string())];
    let m = NewMessage {
        body: b"hello".to_vec(),
        attributes: attrs.clone(),
        ..Default::default()
    };
    f.store.enqueue("q", vec![m, msg("second")]).await.unwrap();
    let peeked = f.store.peek("q", 10, None).await.unwrap();
    assert_eq!(peeked[0].attempt, 0);
    assert_eq!(peeked[0].attributes, attrs);

    let lease = f.lease("q", 1).await;
    assert_eq!(lease.messages.len(), 1);
    let m = &lease.messages[0];
    assert_eq!(
        (m.id.as_str(), m.body.as_slice(), m.attempt),
        ("1", &b"hello"[..], 1)
    );
    assert_eq!(m.enqueued_at_ms, T0);
    assert_eq!(lease.expires_at_ms, T0 + 30_000);
    assert_eq!(f.stats("q").await.in_flight, 1);
    assert_eq!(f.stats("q").await.visible, 1);
    // Peek shows in-flight messages too, and pages by id.
    let all = f.store.peek("q", 10, None).await.unwrap();
    assert_eq!(all.len(), 2);
    let peeked_first_id = all[0].id.clone();
    let after_first = f.store.peek("q", 10, Some(&peeked_first_id)).await.unwrap();
    assert_eq!(after_first.len(), 1);
    assert_eq!(after_first[0].body, b"second");

    let settled = f.store.settle(&lease, ack_all(&lease)).await.unwrap();
    assert_eq!(
        settled,
        Settled {
            acked: 1,
            ..Default::default()
        }
    );
    let stats = f.stats("q").await;
    assert_eq!(
        (
            stats.visible,
            stats.in_flight,
            stats.acked_total,
            stats.enqueued_total
        ),
        (1, 0, 1, 2)
    );

    let lease = f.lease("q", 10).await;
    assert_eq!(ids(&lease), ["2"]);
    f.store.settle(&lease, ack_all(&lease)).await.unwrap();
    assert!(f.store.lease("q", 10, None).await.unwrap().is_none());
    assert_eq!(f.stats("q").await.oldest_age_ms, None);
}

async fn lease_cap_counts_live_leases(f: Fixture) {
    f.queue("q", QueueSettings::default()).await;
    f.store
        .enqueue("q", (0..6).map(|i| msg(&i.to_string())).collect())
        .await
        .unwrap();
    let cap = |f: &Fixture| {
        let store = f.store.clone();
        async move { store.lease_capped("q", 2, None, 2).await.unwrap() }
    };
    let first = cap(&f).await.expect("first lease under the cap");
    let second = cap(&f).await.expect("second lease under the cap");
    assert!(
        cap(&f).await.is_none(),
        "a third live lease exceeds the cap"
    );
    // Settling one frees its place; an expired one frees its place too.
    f.store.settle(&first, ack_all(&first)).await.unwrap();
    let third = cap(&f).await.expect("a place was freed by the settle");
    assert!(cap(&f).await.is_none());
    f.clock.advance(30_001);
    assert!(cap(&f).await.is_some(), "expired leases no longer count");
    drop((second, third));
}

async fn a_raised_cap_adds_places_and_an_empty_lease_takes_none(f: Fixture) {
    f.queue("q", QueueSettings::default()).await;
    f.store.enqueue("q", vec![msg("a")]).await.unwrap();
    let cap = |f: &Fixture, cap: u32| {
        let store = f.store.clone();
        async move { store.lease_capped("q", 10, None, cap).await.unwrap() }
    };
    let first = cap(&f, 1).await.expect("a place under a cap of 1");
    assert!(cap(&f, 1).await.is_none(), "the one place is taken");
    // A cap of 2 has a free place, but nothing is visible: the lease takes nothing, and
    // leaves the place free for the next message.
    assert!(cap(&f, 2).await.is_none());
    f.store.enqueue("q", vec![msg("b")]).await.unwrap();
    let second = cap(&f, 2).await.expect("the second place is still free");
    assert_eq!(ids(&second), ["2"]);
    f.store.enqueue("q", vec![msg("c")]).await.unwrap();
    assert!(cap(&f, 2).await.is_none(), "both places are taken");
    // Extending a lease keeps its place past the first expiry.
    f.store
        .extend(&first, Duration::from_secs(120))
        .await
        .unwrap();
    f.clock.advance(30_001);
    let third = cap(&f, 2)
        .await
        .expect("the second lease expired, its place is free");
    // Delivery order is visibility order: "3" waited since its enqueue, "2" since its expiry.
    assert_eq!(ids(&third), ["3", "2"]);
    assert!(
        cap(&f, 2).await.is_none(),
        "the extended lease still holds its place"
    );
}

fn invocation(function: &str) -> InvocationEntry {
    InvocationEntry {
        id: 0,
        function: function.into(),
        version: 1,
        started_at_ms: T0,
        duration_ms: 0.5,
        batch_size: 1,
        outcome: "ok".into(),
        dry_run: false,
        error: None,
        failures: serde_json::json!([]),
        logs: "handled\n".into(),
        sent: 0,
    }
}

/// A function's invocations over time: every bucket of the window in order, each with how many
/// started in it, how many failed and their duration percentiles (interpolated as PostgreSQL's
/// `percentile_cont` does, the same figures on both backends); dry runs, other functions and
/// invocations outside the window are left out.
async fn invocation_stats_bucket_counts_errors_and_percentiles(f: Fixture) {
    let at = |function: &str, offset: u64, duration_ms: f64, outcome: &str, dry_run: bool| {
        InvocationEntry {
            started_at_ms: T0 + offset,
            duration_ms,
            outcome: outcome.into(),
            dry_run,
            ..invocation(function)
        }
    };
    let first = [
        (0, 4.0, "ok"),
        (1_000, 10.0, "error"),
        (2_500, 1.0, "ok"),
        (9_999, 3.0, "trap"),
        (5_000, 2.0, "ok"),
    ];
    let mut entries: Vec<InvocationEntry> = first
        .iter()
        .map(|(offset, duration, outcome)| at("f", *offset, *duration, outcome, false))
        .collect();
    entries.extend([
        at("f", 20_000, 7.5, "ok", false),
        at("f", 3_000, 1_000.0, "ok", true),
        at("g", 3_000, 1_000.0, "ok", false),
        at("f", 30_000, 1_000.0, "ok", false),
    ]);
    entries.push(InvocationEntry {
        started_at_ms: T0 - 1,
        ..at("f", 0, 1_000.0, "ok", false)
    });
    let keep_all = InvocationRetention {
        max_age_ms: u64::MAX,
        max_per_function: u64::MAX,
        max_bytes_per_function: u64::MAX,
    };
    f.store.record_invocations(entries, keep_all).await.unwrap();

    let window = StatsWindow::new(T0, T0 + 30_000, 10_000).unwrap();
    let buckets = f.store.invocation_stats("f", window).await.unwrap();
    assert_eq!(
        buckets,
        [
            InvocationBucket {
                start_ms: T0,
                invocations: 5,
                errors: 2,
                p50_ms: Some(3.0),
                // Position 0.95 * 4 = 3.8 of the sorted durations: 4 + (10 - 4) * 0.8.
                p95_ms: Some(4.0 + (10.0 - 4.0) * (0.95 * 4.0 - 3.0)),
                p99_ms: Some(4.0 + (10.0 - 4.0) * (0.99 * 4.0 - 3.0)),
            },
            InvocationBucket {
                start_ms: T0 + 10_000,
                invocations: 0,
                errors: 0,
                p50_ms: None,
                p95_ms: None,
                p99_ms: None,
            },
            InvocationBucket {
                start_ms: T0 + 20_000,
                invocations: 1,
                errors: 0,
                p50_ms: Some(7.5),
                p95_ms: Some(7.5),
                p99_ms: Some(7.5),
            },
        ]
    );

    // Buckets are whole: one of 40 s holds the window and counts to its own end, past `until`
    // (the invocation at T0 + 30 s).
    let whole = StatsWindow::new(T0, T0 + 30_000, 40_000).unwrap();
    let one = f.store.invocation_stats("f", whole).await.unwrap();
    assert_eq!((one.len(), one[0].invocations, one[0].errors), (1, 7, 2));
    assert_eq!(one[0].p50_ms, Some(4.0));
    // A function with no invocations (or none at all) has only empty buckets.
    let none = f.store.invocation_stats("nobody", window).await.unwrap();
    assert!(
        none.iter()
            .all(|b| b.invocations == 0 && b.p50_ms.is_none())
    );
    assert_eq!(none.len(), 3);
}

/// A function that prints a lot keeps only as many invocations as fit its byte budget (output
/// and errors), newest first, and always its newest one; other functions keep theirs.
async fn the_log_keeps_a_function_within_its_byte_budget(f: Fixture) {
    let budget = InvocationRetention {
        max_age_ms: u64::MAX,
        max_per_function: 100,
        max_bytes_per_function: 2_500,
    };
    let printing = |i: u64, bytes: usize| InvocationEntry {
        started_at_ms: T0 + i,
        logs: "x".repeat(bytes),
        ..invocation("loud")
    };
    // Trimming runs with a write at most once per interval: one write per interval here.
    for i in 0..5 {
        f.clock.advance(LOG_TRIM_INTERVAL_MS);
        let entries = vec![printing(i, 1_000), invocation("quiet")];
        f.store.record_invocations(entries, budget).await.unwrap();
    }
    let query = InvocationQuery {
        before: None,
        outcomes: Vec::new(),
        limit: 100,
    };
    let kept = f.store.invocations("loud", query.clone()).await.unwrap();
    assert_eq!(
        kept.iter().map(|e| e.started_at_ms).collect::<Vec<_>>(),
        [T0 + 4, T0 + 3],
        "two of 1,000 bytes fit 2,500"
    );
    assert_eq!(
        f.store
            .invocations("quiet", query.clone())
            .await
            .unwrap()
            .len(),
        5
    );
    // One invocation over the budget on its own is kept, alone.
    f.clock.advance(LOG_TRIM_INTERVAL_MS);
    f.store
        .record_invocations(vec![printing(9, 4_000)], budget)
        .await
        .unwrap();
    let kept = f.store.invocations("loud", query).await.unwrap();
    assert_eq!(
        kept.iter().map(|e| e.started_at_ms).collect::<Vec<_>>(),
        [T0 + 9]
    );
}

/// The batch's invocation commits with its settle: the settle answers it with its id, and the
/// log reads it back.
async fn settle_logged_commits_the_invocation_with_the_batch(f: Fixture) {
    f.queue("q", QueueSettings::default()).await;
    f.store.enqueue("q", vec![msg("a")]).await.unwrap();
    let lease = f.store.lease("q", 10, None).await.unwrap().unwrap();
    let keep = InvocationRetention {
        max_age_ms: u64::MAX,
        max_per_function: 10,
        max_bytes_per_function: u64::MAX,
    };
    let settled = f
        .store
        .settle_logged(&lease, ack_all(&lease), invocation("f"), keep)
        .await
        .unwrap();
    assert_eq!(settled.acked, 1);
    let logged = settled.logged.expect("the invocation was recorded");
    assert!(logged.id > 0);
    let query = InvocationQuery {
        before: None,
        outcomes: Vec::new(),
        limit: 10,
    };
    let log = f.store.invocations("f", query.clone()).await.unwrap();
    assert_eq!(log, vec![logged]);
    // A settlement that fails (a send to a missing queue) records nothing either.
    f.store.enqueue("q", vec![msg("b")]).await.unwrap();
    let lease = f.store.lease("q", 10, None).await.unwrap().unwrap();
    let mut failing = ack_all(&lease);
    failing.send.push(("missing".into(), msg("x")));
    assert!(matches!(
        f.store
            .settle_logged(&lease, failing, invocation("f"), keep)
            .await,
        Err(Error::QueueNotFound(_))
    ));
    assert_eq!(f.store.invocations("f", query).await.unwrap().len(), 1);
}

/// A trigger's settle leases its next batch in the same commit: the batch it settles is gone,
/// the next one is held (its ack counts, nobody else leases it), a cap counts the settled lease
/// as freed, and a settle that fails leases nothing.
async fn a_settle_leases_the_next_batch_in_its_commit(f: Fixture) {
    f.queue("q", QueueSettings::default()).await;
    let five: Vec<NewMessage> = ["a", "b", "c", "d", "e"].into_iter().map(msg).collect();
    f.store.enqueue("q", five).await.unwrap();
    let keep = InvocationRetention {
        max_age_ms: u64::MAX,
        max_per_function: 10,
        max_bytes_per_function: u64::MAX,
    };
    // A cap of one: the lease being settled is the only live one, and its settle frees it.
    let first = f
        .store
        .lease_capped("q", 2, None, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bodies(&first), ["a", "b"]);
    let settled = f
        .store
        .settle_logged_then_lease(
            &first,
            ack_all(&first),
            invocation("f"),
            keep,
            LeaseRequest::new(2, None, Some(1)),
        )
        .await
        .unwrap();
    assert_eq!(settled.acked, 2);
    assert!(settled.logged.is_some());
    let second = settled
        .next
        .expect("the next batch was leased with the settle");
    assert_eq!(bodies(&second), ["c", "d"]);
    // The chained lease holds its messages and counts against the cap.
    assert!(
        f.store
            .lease_capped("q", 10, None, 1)
            .await
            .unwrap()
            .is_none()
    );
    let stats = f.store.get_queue("q").await.unwrap().stats;
    assert_eq!(
        (stats.visible, stats.in_flight, stats.acked_total),
        (1, 2, 2)
    );

    // A failing settle (a send to a missing queue) neither settles nor leases.
    let mut failing = ack_all(&second);
    failing.send.push(("missing".into(), msg("x")));
    assert!(matches!(
        f.store
            .settle_logged_then_lease(
                &second,
                failing,
                invocation("f"),
                keep,
                LeaseRequest::new(2, None, Some(1))
            )
            .await,
        Err(Error::QueueNotFound(_))
    ));
    let stats = f.store.get_queue("q").await.unwrap().stats;
    assert_eq!((stats.visible, stats.in_flight), (1, 2));

    // The last batch: the rest, then nothing left to lease.
    let settled = f
        .store
        .settle_logged_then_lease(
            &second,
            ack_all(&second),
            invocation("f"),
            keep,
            LeaseRequest::new(2, None, Some(1)),
        )
        .await
        .unwrap();
    let third = settled.next.expect("the last message");
    assert_eq!(bodies(&third), ["e"]);
    let settled = f
        .store
        .settle_logged_then_lease(
            &third,
            ack_all(&third),
            invocation("f"),
            keep,
            LeaseRequest::new(2, None, None),
        )
        .await
        .unwrap();
    assert_eq!((settled.acked, settled.next), (1, None));
    let stats = f.store.get_queue("q").await.unwrap().stats;
    assert_eq!(
        (stats.visible, stats.in_flight, stats.acked_total),
        (0, 0, 5)
    );
}

async fn dedup_returns_the_original_id(f: Fixture) {
    f.queue(
        "q",
        QueueSettings {
            dedup_window_ms: 1_000,
            ..Default::default()
        },
    )
    .await;
    let d = |body: &str| NewMessage {
        dedup_id: Some("order-1".into()),
        ..msg(body)
    };
    let first = f
        .store
        .enqueue("q", vec![d("a"), d("b"), msg("c")])
        .await
        .unwrap();
    assert_eq!(
        first,
        [
            Enqueued {
                id: "1".into(),
                duplicate: false
            },
            Enqueued {
                id: "1".into(),
                duplicate: true
            },
            Enqueued {
                id: "2".into(),
                duplicate: false
            },
        ]
    );
    f.clock.advance(999);
    let again = f.store.enqueue("q", vec![d("x")]).await.unwrap();
    assert_eq!(
        again,
        [Enqueued {
            id: "1".into(),
            duplicate: true
        }]
    );
    assert_eq!(f.stats("q").await.enqueued_total, 2);
    // Even after the original is acked, the window holds.
    let lease = f.lease("q", 10).await;
    f.store.settle(&lease, ack_all(&lease)).await.unwrap();
    assert!(f.store.enqueue("q", vec![d("y")]).await.unwrap()[0].duplicate);
    f.clock.advance(1);
    let later = f.store.enqueue("q", vec![d("z")]).await.unwrap();
    assert_eq!(
        later,
        [Enqueued {
            id: "3".into(),
            duplicate: false
        }]
    );
    // The sweep forgets expired dedup ids without harm.
    f.clock.advance(5_000);
    f.store.expire_now().await.unwrap();
    assert!(!f.store.enqueue("q", vec![d("w")]).await.unwrap()[0].duplicate);
}

async fn delayed_messages_wait(f: Fixture) {
    f.queue("q", QueueSettings::default()).await;
    f.store
        .enqueue(
            "q",
            vec![NewMessage {
                delay_ms: 500,
                ..msg("later")
            }],
        )
        .await
        .unwrap();
    assert!(f.store.lease("q", 10, None).await.unwrap().is_none());
    let stats = f.stats("q").await;
    assert_eq!((stats.visible, stats.delayed, stats.in_flight), (0, 1, 0));
    assert_eq!(
        f.store.next_visible_at_ms("q").await.unwrap(),
        Some(T0 + 500)
    );
    assert_eq!(f.store.visible_count("q", 10).await.unwrap(), 0);
    f.clock.advance(500);
    assert_eq!(f.store.visible_count("q", 10).await.unwrap(), 1);
    assert_eq!(f.store.next_visible_at_ms("q").await.unwrap(), None);
    assert_eq!(f.lease("q", 10).await.messages[0].body, b"later");
}

async fn visible_count_is_capped(f: Fixture) {
    f.queue("q", QueueSettings::default()).await;
    f.store
        .enqueue("q", (0..20).map(|i| msg(&i.to_string())).collect())
        .await
        .unwrap();
    assert_eq!(f.store.visible_count("q", 5).await.unwrap(), 5);
    assert_eq!(f.store.visible_count("q", 100).await.unwrap(), 20);
}

async fn a_lull_reads_what_is_visible_and_what_comes_due(f: Fixture) {
    f.queue(
        "q",
        QueueSettings {
            visibility_timeout_ms: 1_000,
            ..Default::default()
        },
    )
    .await;
    let lull = |visible_now, next_visible_at_ms| Lull {
        visible_now,
        next_visible_at_ms,
    };
    assert_eq!(f.store.lull("q").await.unwrap(), lull(false, None));
    f.store
        .enqueue(
            "q",
            vec![
                msg("now"),
                NewMessage {
                    delay_ms: 500,
                    ..msg("later")
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(f.store.lull("q").await.unwrap(), lull(true, Some(T0 + 500)));
    // The visible one leased: what is left comes due, the delayed message first.
    f.lease("q", 1).await;
    assert_eq!(
        f.store.lull("q").await.unwrap(),
        lull(false, Some(T0 + 500))
    );
    f.clock.advance(500);
    assert_eq!(
        f.store.lull("q").await.unwrap(),
        lull(true, Some(T0 + 1_000))
    );
    assert!(matches!(
        f.store.lull("nope").await,
        Err(Error::QueueNotFound(_))
    ));
}

/// SQS's `ApproximateFirstReceiveTimestamp`: set by the first lease, unchanged by later ones.
async fn the_first_lease_time_is_kept_across_redeliveries(f: Fixture) {
    f.queue(
        "q",
        QueueSettings {
            visibility_timeout_ms: 1_000,
            ..Default::default()
        },
    )
    .await;
    f.store.enqueue("q", vec![msg("m")]).await.unwrap();
    let peeked = f.store.peek("q", 10, None).await.unwrap();
    assert_eq!(peeked[0].first_leased_at_ms, None);
    f.clock.advance(500);
    let first = f.lease("q", 10).await;
    assert_eq!(first.messages[0].first_leased_at_ms, Some(T0 + 500));
    f.clock.advance(1_000);
    let second = f.lease("q", 10).await;
    assert_eq!(second.messages[0].attempt, 2);
    assert_eq!(second.messages[0].first_leased_at_ms, Some(T0 + 500));
    let peeked = f.store.peek("q", 10, None).await.unwrap();
    assert_eq!(peeked[0].first_leased_at_ms, Some(T0 + 500));
}

async fn expired_lease_is_redelivered_and_the_old_ack_is_stale(f: Fixture) {
    f.queue(
        "q",
        QueueSettings {
            visibility_timeout_ms: 1_000,
            ..Default::default()
        },
    )
    .await;
    f.store.enqueue("q", vec![msg("m")]).await.unwrap();
    let first = f.lease("q", 10).await;
    assert!(f.store.lease("q", 10, None).await.unwrap().is_none());
    assert_eq!(
        f.store.next_visible_at_ms("q").await.unwrap(),
        Some(T0 + 1_000)
    );
    f.clock.advance(1_000);
    let second = f.lease("q", 10).await;
    assert_eq!(ids(&second), ids(&first));
    assert_eq!(second.messages[0].attempt, 2);
    assert_ne!(second.id, first.id);

    let stale = f.store.settle(&first, ack_all(&first)).await.unwrap();
    assert_eq!(
        stale,
        Settled {
            stale: ids(&first),
            ..Default::default()
        }
    );
    assert_eq!(f.stats("q").await.in_flight, 1);
    assert_eq!(
        f.store
            .extend(&first, Duration::from_secs(60))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        f.store
            .extend(&second, Duration::from_secs(60))
            .await
            .unwrap(),
        1
    );
    f.clock.advance(30_000);
    assert!(
        f.store.lease("q", 10, None).await.unwrap().is_none(),
        "extended"
    );
    let ok = f.store.settle(&second, ack_all(&second)).await.unwrap();
    assert_eq!(ok.acked, 1);
}

async fn lease_visibility_override(f: Fixture) {
    f.queue("q", QueueSettings::default()).await;
    f.store.enqueue("q", vec![msg("m")]).await.unwrap();
    let lease = f
        .store
        .lease("q", 1, Some(Duration::from_millis(10)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lease.expires_at_ms, T0 + 10);
    f.clock.advance(10);
    assert!(f.store.lease("q", 1, None).await.unwrap().is_some());
}

async fn retry_then_dead_letter_with_attributes(f: Fixture) {
    f.queue("dlq", QueueSettings::default()).await;
    let settings = QueueSettings {
        max_attempts: 2,
        dead_letter_queue: Some("dlq".into()),
        ..Default::default()
    };
    f.queue("q", settings).await;
    let m = NewMessage {
        attributes: vec![("trace".into(), "t1".into())],
        ..msg("payload")
    };
    f.store.enqueue("q", vec![m]).await.unwrap();

    let lease = f.lease("q", 10).await;
    let retry = |lease: &Lease, delay_ms| Settlement {
        retry: vec![Retry {
            id: lease.messages[0].id.clone(),
            delay_ms,
            error: "boom".into(),
        }],
        ..Default::default()
    };
    let settled = f.store.settle(&lease, retry(&lease, 100)).await.unwrap();
    assert_eq!(settled.retried, 1);
    let stats = f.stats("q").await;
    assert_eq!(
        (stats.delayed, stats.in_flight, stats.retried_total),
        (1, 0, 1)
    );
    f.clock.advance(100);
    let lease = f.lease("q", 10).await;
    assert_eq!(lease.messages[0].attempt, 2);
    let settled = f.store.settle(&lease, retry(&lease, 100)).await.unwrap();
    assert_eq!(
        settled,
        Settled {
            dead_lettered: 1,
            ..Default::default()
        }
    );

    let q = f.stats("q").await;
    assert_eq!(
        (
            q.visible + q.delayed + q.in_flight,
            q.dead_lettered_total,
            q.retried_total
        ),
        (0, 1, 1)
    );
    let dead = f.store.peek("dlq", 10, None).await.unwrap();
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!(
        (d.body.as_slice(), d.attempt, d.queue.as_str()),
        (&b"payload"[..], 0, "dlq")
    );
    assert_ne!(
        d.id, lease.messages[0].id,
        "a new message in the dead-letter queue"
    );
    assert_eq!(attr(d, "trace"), Some("t1"));
    assert_eq!(attr(d, ATTR_DEAD_LETTER_REASON), Some("boom"));
    assert_eq!(attr(d, ATTR_ATTEMPTS), Some("2"));
    assert_eq!(attr(d, ATTR_SOURCE_QUEUE), Some("q"));
    assert_eq!(
        attr(d, ATTR_SOURCE_ID),
        Some(lease.messages[0].id.as_str()),
        "the copy names the message it came from"
    );
    assert_eq!(f.stats("dlq").await.enqueued_total, 1);
}

/// A dead-letter queue is filtered and tallied by the reason its messages died for, across the
/// whole queue: a filtered peek pages within the reason, the counts see every message (not a
/// page of them), each queue's only, and a redrive takes a message out of its reason's count.
/// A reason longer than an index entry may hold is kept and found like any other.
async fn dead_letters_are_peeked_and_counted_by_reason(f: Fixture) {
    f.queue("dlq", QueueSettings::default()).await;
    f.queue("dlq2", QueueSettings::default()).await;
    let with_dlq = |dlq: &str| QueueSettings {
        dead_letter_queue: Some(dlq.into()),
        max_attempts: 1,
        ..Default::default()
    };
    f.queue("q", with_dlq("dlq")).await;
    f.queue("q2", with_dlq("dlq2")).await;
    let long = "x".repeat(5_000);
    let reasons = [
        "poison", "timeout", "poison", &long, "timeout", "poison", "retry",
    ];
    let bodies: Vec<String> = (0..reasons.len()).map(|i| format!("m{i}")).collect();
    f.store
        .enqueue("q", bodies.iter().map(|b| msg(b)).collect())
        .await
        .unwrap();
    f.store.enqueue("q2", vec![msg("other")]).await.unwrap();
    // One message at a time, so each dead letter's id follows the order above; the last runs
    // out of attempts on a retry and dies for its error.
    for reason in reasons {
        let lease = f.lease("q", 1).await;
        let id = lease.messages[0].id.clone();
        let settlement = match reason {
            "retry" => Settlement {
                retry: vec![Retry {
                    id,
                    delay_ms: 0,
                    error: "again".into(),
                }],
                ..Settlement::default()
            },
            _ => Settlement {
                dead_letter: vec![DeadLetter {
                    id,
                    reason: reason.to_owned(),
                }],
                ..Settlement::default()
            },
        };
        assert_eq!(
            f.store
                .settle(&lease, settlement)
                .await
                .unwrap()
                .dead_lettered,
            1
        );
    }
    let lease = f.lease("q2", 1).await;
    let settlement = Settlement {
        dead_letter: vec![DeadLetter {
            id: lease.messages[0].id.clone(),
            reason: "poison".into(),
        }],
        ..Settlement::default()
    };
    f.store.settle(&lease, settlement).await.unwrap();
    // Two put in by hand: no reason.
    f.store
        .enqueue("dlq", vec![msg("hand 1"), msg("hand 2")])
        .await
        .unwrap();

    let count = |reason: &str, count: u64| ReasonCount {
        reason: reason.to_owned(),
        count,
    };
    let all = f.store.dead_letter_reasons("dlq", 10).await.unwrap();
    assert_eq!(
        all,
        ReasonCounts {
            reasons: vec![
                count("poison", 3),
                count("timeout", 2),
                count("again", 1),
                count(&long, 1)
            ],
            distinct: 4,
            without_reason: 2,
        }
    );
    let top = f.store.dead_letter_reasons("dlq", 2).await.unwrap();
    assert_eq!(top.reasons, all.reasons[..2]);
    assert_eq!(
        (top.distinct, top.without_reason),
        (4, 2),
        "capped, still whole"
    );
    assert_eq!(
        f.store.dead_letter_reasons("dlq2", 10).await.unwrap(),
        ReasonCounts {
            reasons: vec![count("poison", 1)],
            distinct: 1,
            without_reason: 0,
        }
    );
    assert_eq!(
        f.store.dead_letter_reasons("q", 10).await.unwrap(),
        ReasonCounts::default(),
        "an empty queue"
    );

    let body_of = |m: &Message| String::from_utf8(m.body.clone()).unwrap();
    let poison = ReasonFilter::Reason("poison".into());
    let first = f
        .store
        .peek_by_reason("dlq", &poison, 2, None)
        .await
        .unwrap();
    assert_eq!(first.iter().map(body_of).collect::<Vec<_>>(), ["m0", "m2"]);
    assert!(
        first
            .iter()
            .all(|m| attr(m, ATTR_DEAD_LETTER_REASON) == Some("poison"))
    );
    let second = f
        .store
        .peek_by_reason("dlq", &poison, 2, Some(&first[1].id))
        .await
        .unwrap();
    assert_eq!(second.iter().map(body_of).collect::<Vec<_>>(), ["m5"]);
    let past = f
        .store
        .peek_by_reason("dlq", &poison, 2, Some(&second[0].id))
        .await
        .unwrap();
    assert!(past.is_empty());
    let long_one = f
        .store
        .peek_by_reason("dlq", &ReasonFilter::Reason(long.clone()), 10, None)
        .await
        .unwrap();
    assert_eq!(long_one.iter().map(body_of).collect::<Vec<_>>(), ["m3"]);
    let again = f
        .store
        .peek_by_reason("dlq", &ReasonFilter::Reason("again".into()), 10, None)
        .await
        .unwrap();
    assert_eq!(again.iter().map(body_of).collect::<Vec<_>>(), ["m6"]);
    let by_hand = f
        .store
        .peek_by_reason("dlq", &ReasonFilter::NoReason, 10, None)
        .await
        .unwrap();
    assert_eq!(
        by_hand.iter().map(body_of).collect::<Vec<_>>(),
        ["hand 1", "hand 2"]
    );
    let none = ReasonFilter::Reason("never".into());
    assert!(
        f.store
            .peek_by_reason("dlq", &none, 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    let bad = f.store.peek_by_reason("dlq", &poison, 10, Some("x")).await;
    assert!(matches!(bad, Err(Error::InvalidCursor(_))), "{bad:?}");
    let missing = f.store.dead_letter_reasons("nope", 10).await;
    assert!(
        matches!(missing, Err(Error::QueueNotFound(_))),
        "{missing:?}"
    );
    let missing = f.store.peek_by_reason("nope", &poison, 10, None).await;
    assert!(
        matches!(missing, Err(Error::QueueNotFound(_))),
        "{missing:?}"
    );

    // A redriven message leaves its reason behind, in the counts and in its new queue.
    let moved = f
        .store
        .redrive_messages("dlq", None, vec![first[0].id.clone()])
        .await
        .unwrap();
    assert_eq!(moved, 1);
    let after = f.store.dead_letter_reasons("dlq", 1).await.unwrap();
    assert_eq!(after.reasons, [count("poison", 2)]);
    assert_eq!(
        f.store.dead_letter_reasons("q", 10).await.unwrap(),
        ReasonCounts {
            reasons: Vec::new(),
            distinct: 0,
            without_reason: 1,
        }
    );
}

async fn explicit_dead_letter_and_drop_without_dlq(f: Fixture) {
    f.queue("dlq", QueueSettings::default()).await;
    f.queue(
        "q",
        QueueSettings {
            dead_letter_queue: Some("dlq".into()),
            ..Default::default()
        },
    )
    .await;
    f.queue("plain", QueueSettings::default()).await;
    f.store.enqueue("q", vec![msg("a")]).await.unwrap();
    f.store.enqueue("plain", vec![msg("b")]).await.unwrap();
    for queue in ["q", "plain"] {
        let lease = f.lease(queue, 10).await;
        let s = Settlement {
            dead_letter: vec![DeadLetter {
                id: lease.messages[0].id.clone(),
                reason: "poison".into(),
            }],
            ..Default::default()
        };
        let settled = f.store.settle(&lease, s).await.unwrap();
        if queue == "q" {
            assert_eq!(
                settled,
                Settled {
                    dead_lettered: 1,
                    ..Default::default()
                }
            );
        } else {
            assert_eq!(
                settled,
                Settled {
                    dropped: 1,
                    ..Default::default()
                }
            );
        }
    }
    assert_eq!(
        attr(
            &f.store.peek("dlq", 1, None).await.unwrap()[0],
            ATTR_DEAD_LETTER_REASON
        ),
        Some("poison")
    );
    let plain = f.stats("plain").await;
    assert_eq!(
        (
            plain.dropped_total,
            plain.dead_lettered_total,
            plain.visible
        ),
        (1, 0, 0)
    );
}

async fn lease_dead_letters_messages_out_of_attempts(f: Fixture) {
    f.queue("dlq", QueueSettings::default()).await;
    let settings = QueueSettings {
        max_attempts: 1,
        visibility_timeout_ms: 100,
        dead_letter_queue: Some("dlq".into()),
        ..Default::default()
    };
    f.queue("q", settings).await;
    f.store
        .enqueue("q", vec![msg("dies"), msg("lives")])
        .await
        .unwrap();
    let first = f.lease("q", 1).await;
    assert_eq!(first.messages[0].body, b"dies");
    // Its consumer dies; the lease expires.
    f.clock.advance(100);
    let next = f.lease("q", 10).await;
    assert_eq!(
        next.messages
            .iter()
            .map(|m| m.body.as_slice())
            .collect::<Vec<_>>(),
        [&b"lives"[..]]
    );
    let dead = f.store.peek("dlq", 10, None).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        attr(&dead[0], ATTR_DEAD_LETTER_REASON),
        Some(REASON_LEASE_EXPIRED)
    );
    assert_eq!(attr(&dead[0], ATTR_ATTEMPTS), Some("1"));
    assert_eq!(f.stats("q").await.dead_lettered_total, 1);
    // Only messages out of attempts: `None` rather than an empty lease.
    f.clock.advance(100);
    assert!(f.store.lease("q", 10, None).await.unwrap().is_none());
}

async fn redrive_moves_back_with_attempts_reset(f: Fixture) {
    f.queue("dlq", QueueSettings::default()).await;
    f.queue("other", QueueSettings::default()).await;
    f.queue(
        "q",
        QueueSettings {
            max_attempts: 1,
            dead_letter_queue: Some("dlq".into()),
            ..Default::default()
        },
    )
    .await;
    let m = NewMessage {
        attributes: vec![("keep".into(), "me".into())],
        ..msg("x")
    };
    f.store
        .enqueue("q", vec![m.clone(), m.clone(), m])
        .await
        .unwrap();
    let lease = f.lease("q", 10).await;
    let s = Settlement {
        retry: lease
            .messages
            .iter()
            .map(|m| Retry {
                id: m.id.clone(),
                delay_ms: 0,
                error: "e".into(),
            })
            .collect(),
        ..Default::default()
    };
    assert_eq!(f.store.settle(&lease, s).await.unwrap().dead_lettered, 3);
    assert_eq!(f.stats("dlq").await.visible, 3);

    assert_eq!(f.store.redrive("dlq", None, Some(1)).await.unwrap(), 1);
    assert_eq!(
        f.store
            .redrive("dlq", Some("other"), Some(1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(f.store.redrive("dlq", None, None).await.unwrap(), 1);
    assert_eq!(f.stats("dlq").await.visible, 0);
    assert_eq!(f.stats("other").await.visible, 1);
    let back = f.store.peek("q", 10, None).await.unwrap();
    assert_eq!(back.len(), 2);
    for m in &back {
        assert_eq!(m.attempt, 0);
        assert_eq!(m.attributes, [("keep".to_string(), "me".to_string())]);
    }
    // Redelivered with a fresh attempt budget.
    let lease = f.lease("q", 10).await;
    assert!(lease.messages.iter().all(|m| m.attempt == 1));

    let err = f
        .store
        .redrive("dlq", Some("missing"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::QueueNotFound(_)), "{err}");
    let err = f.store.redrive("missing", None, None).await.unwrap_err();
    assert!(matches!(err, Error::QueueNotFound(_)), "{err}");
}

async fn chosen_dead_letters_are_redriven_or_deleted_one_by_one(f: Fixture) {
    f.queue("dlq", QueueSettings::default()).await;
    f.queue(
        "q",
        QueueSettings {
            max_attempts: 1,
            dead_letter_queue: Some("dlq".into()),
            ..Default::default()
        },
    )
    .await;
    f.store
        .enqueue("q", vec![msg("a"), msg("b"), msg("c")])
        .await
        .unwrap();
    let lease = f.lease("q", 10).await;
    let s = Settlement {
        dead_letter: ids(&lease)
            .into_iter()
            .map(|id| DeadLetter {
                id,
                reason: "bad".into(),
            })
            .collect(),
        ..Default::default()
    };
    assert_eq!(f.store.settle(&lease, s).await.unwrap().dead_lettered, 3);
    let dead: Vec<String> = f
        .store
        .peek("dlq", 10, None)
        .await
        .unwrap()
        .iter()
        .map(|m| m.id.clone())
        .collect();

    // Only the chosen one moves; ids that are not dead letters here are skipped.
    let moved = f
        .store
        .redrive_messages(
            "dlq",
            None,
            vec![dead[1].clone(), "999999".into(), "not-an-id".into()],
        )
        .await
        .unwrap();
    assert_eq!(moved, 1);
    let back = f.store.peek("q", 10, None).await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].body, b"b");

    // Deleting: only messages of the named queue.
    assert_eq!(
        f.store
            .delete_messages("q", vec![dead[0].clone()])
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        f.store
            .delete_messages("dlq", vec![dead[0].clone()])
            .await
            .unwrap(),
        1
    );
    let left = f.store.peek("dlq", 10, None).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].body, b"c");
    let err = f
        .store
        .delete_messages("missing", vec!["1".into()])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::QueueNotFound(_)), "{err}");
}

async fn settle_is_all_or_nothing(f: Fixture) {
    f.queue(
        "q",
        QueueSettings {
            max_message_bytes: 10,
            ..Default::default()
        },
    )
    .await;
    f.queue("next", QueueSettings::default()).await;
    f.store
        .enqueue("q", vec![msg("a"), msg("b")])
        .await
        .unwrap();
    let lease = f.lease("q", 10).await;
    let settlement = |to: &str| Settlement {
        ack: vec![lease.messages[0].id.clone()],
        retry: vec![Retry {
            id: lease.messages[1].id.clone(),
            delay_ms: 0,
            error: "e".into(),
        }],
        send: vec![("next".into(), msg("ok")), (to.into(), msg("chained"))],
        ..Default::default()
    };
    let err = f
        .store
        .settle(&lease, settlement("missing"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::QueueNotFound(ref q) if q == "missing"),
        "{err}"
    );
    let err = f
        .store
        .settle(
            &lease,
            Settlement {
                send: vec![("q".into(), msg("0123456789ab"))],
                ..settlement("next")
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::MessageTooLarge {
                size: 12,
                limit: 10,
                ..
            }
        ),
        "{err}"
    );
    // Nothing applied: both still in flight, nothing sent, no counters moved.
    let q = f.stats("q").await;
    assert_eq!((q.in_flight, q.acked_total, q.retried_total), (2, 0, 0));
    let next = f.stats("next").await;
    assert_eq!((next.visible, next.enqueued_total), (0, 0));

    let settled = f.store.settle(&lease, settlement("next")).await.unwrap();
    assert_eq!(
        settled,
        Settled {
            acked: 1,
            retried: 1,
            sent: 2,
            ..Default::default()
        }
    );
    assert_eq!(f.stats("next").await.visible, 2);
    assert_eq!(f.stats("q").await.visible, 1);
}

async fn enqueue_is_all_or_nothing_and_size_checked(f: Fixture) {
    f.queue(
        "q",
        QueueSettings {
            max_message_bytes: 8,
            ..Default::default()
        },
    )
    .await;
    let big = NewMessage {
        attributes: vec![("kk".into(), "vv".into())],
        ..msg("12345")
    };
    let err = f
        .store
        .enqueue("q", vec![msg("fine"), big])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::MessageTooLarge {
                size: 9,
                limit: 8,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(f.stats("q").await.enqueued_total, 0);
    assert!(f.store.peek("q", 10, None).await.unwrap().is_empty());
}

async fn queues_in_use_cannot_be_deleted(f: Fixture) {
    f.queue("dlq", QueueSettings::default()).await;
    f.queue(
        "q",
        QueueSettings {
            dead_letter_queue: Some("dlq".into()),
            ..Default::default()
        },
    )
    .await;
    let err = f.store.delete_queue("dlq").await.unwrap_err();
    assert!(
        matches!(err, Error::QueueInUse { ref queue, ref used_by } if queue == "dlq" && used_by == "q"),
        "{err}"
    );

    f.store
        .add_function_version("fn", "abc", 10, serde_json::json!({}))
        .await
        .unwrap();
    let trigger = TriggerRecord {
        function: "fn".into(),
        queue: "q".into(),
        batch_size: 10,
        max_wait_ms: 100,
        max_concurrency: 2,
        paused: false,
    };
    f.store.put_trigger(trigger).await.unwrap();
    let err = f.store.delete_queue("q").await.unwrap_err();
    assert!(
        matches!(err, Error::QueueHasConsumer { ref function, .. } if function == "fn"),
        "{err}"
    );
    f.store.delete_trigger("fn").await.unwrap();

    f.store.enqueue("q", vec![msg("a")]).await.unwrap();
    f.store.delete_queue("q").await.unwrap();
    assert!(!f.store.queue_exists("q"));
    assert!(matches!(
        f.store.get_queue("q").await,
        Err(Error::QueueNotFound(_))
    ));
    // Its messages went with it: a new queue of the same name starts empty.
    f.queue("q", QueueSettings::default()).await;
    assert!(f.store.peek("q", 10, None).await.unwrap().is_empty());
    f.store.delete_queue("dlq").await.unwrap();
    assert!(matches!(
        f.store.delete_queue("dlq").await,
        Err(Error::QueueNotFound(_))
    ));
}

async fn purge_deletes_everything(f: Fixture) {
    f.queue("q", QueueSettings::default()).await;
    f.store
        .enqueue(
            "q",
            vec![
                msg("a"),
                msg("b"),
                NewMessage {
                    delay_ms: 10,
                    ..msg("c")
                },
            ],
        )
        .await
        .unwrap();
    let lease = f.lease("q", 1).await;
    assert_eq!(f.store.purge("q").await.unwrap(), 3);
    assert_eq!(
        f.store.settle(&lease, ack_all(&lease)).await.unwrap().stale,
        ids(&lease)
    );
    let stats = f.stats("q").await;
    assert_eq!((stats.visible, stats.delayed, stats.in_flight), (0, 0, 0));
}

async fn retention_expires_old_messages(f: Fixture) {
    f.queue(
        "q",
        QueueSettings {
            retention_ms: 60_000,
            ..Default::default()
        },
    )
    .await;
    // An older message of a queue with a longer retention must not stop the sweep.
    f.queue("long", QueueSettings::default()).await;
    f.store.enqueue("long", vec![msg("kept")]).await.unwrap();
    f.store.enqueue("q", vec![msg("old")]).await.unwrap();
    f.clock.advance(30_000);
    f.store.enqueue("q", vec![msg("new")]).await.unwrap();
    assert_eq!(f.stats("q").await.oldest_age_ms, Some(30_000));
    f.clock.advance(30_001);
    assert_eq!(f.store.expire_now().await.unwrap(), 1);
    let stats = f.stats("q").await;
    assert_eq!((stats.visible, stats.expired_total), (1, 1));
    assert_eq!(f.store.peek("q", 10, None).await.unwrap()[0].body, b"new");
    assert_eq!(f.stats("long").await.visible, 1);
}

async fn notifier_wakes_on_visible_messages(f: Fixture) {
    f.queue("q", QueueSettings::default()).await;
    let notify = f.store.notifier("q");
    let woken = notify.notified();
    f.store.enqueue("q", vec![msg("a")]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), woken)
        .await
        .expect("notified");
}

/// A host's consumers wake when another host enqueues into their queue or a settle there sends
/// to it (on PostgreSQL, by the NOTIFY sent after the commit; on SQLite the "other host" is
/// the same store).
async fn another_host_wakes_on_enqueues_and_sends(f: Fixture) {
    let other = match &f._db {
        Some(db) => Store::connect_postgres(&db.url, StoreOptions::default(), f.clock.clone())
            .await
            .expect("second host"),
        None => f.store.clone(),
    };
    f.queue("q", QueueSettings::default()).await;
    f.queue("out", QueueSettings::default()).await;
    // The other host knows the queues once it is listening (it reads them after LISTEN).
    tokio::time::timeout(Duration::from_secs(5), async {
        while !other.queue_exists("out") {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the other host hears of the queues");
    let (q, out) = (other.notifier("q"), other.notifier("out"));
    let (q_woken, out_woken) = (q.notified(), out.notified());
    tokio::pin!(q_woken, out_woken);
    q_woken.as_mut().enable();
    out_woken.as_mut().enable();

    f.store.enqueue("q", vec![msg("a")]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), q_woken)
        .await
        .expect("the other host is woken by the enqueue");

    let lease = f.lease("q", 1).await;
    let settlement = Settlement {
        send: vec![("out".into(), msg("b"))],
        ..ack_all(&lease)
    };
    f.store.settle(&lease, settlement).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), out_woken)
        .await
        .expect("the other host is woken by the settle's send");
}

/// A queue deleted while enqueues into it are in flight leaves nothing behind: each enqueue
/// either commits first (and its messages go with the queue) or finds the queue gone. A queue
/// created again under the name starts empty, its counters at zero.
async fn an_enqueue_racing_a_queue_delete_leaves_nothing_behind(f: Fixture) {
    for _ in 0..20 {
        f.queue("q", QueueSettings::default()).await;
        let enqueues: Vec<_> = (0..4)
            .map(|_| {
                let store = f.store.clone();
                tokio::spawn(async move { store.enqueue("q", vec![msg("a"), msg("b")]).await })
            })
            .collect();
        f.store.delete_queue("q").await.unwrap();
        for enqueue in enqueues {
            match enqueue.await.unwrap() {
                Ok(_) | Err(Error::QueueNotFound(_)) => {}
                Err(err) => panic!("an enqueue racing the delete failed otherwise: {err}"),
            }
        }
        f.queue("q", QueueSettings::default()).await;
        let stats = f.stats("q").await;
        assert_eq!(
            (stats.visible, stats.enqueued_total),
            (0, 0),
            "the queue created again holds what the deleted one was sent"
        );
        f.store.delete_queue("q").await.unwrap();
    }
}

async fn functions_and_triggers(f: Fixture) {
    f.queue("q", QueueSettings::default()).await;
    f.queue("q2", QueueSettings::default()).await;
    let err = f.store.get_function("fn").await.unwrap_err();
    assert!(matches!(err, Error::FunctionNotFound(_)), "{err}");
    let v1 = f
        .store
        .add_function_version("fn", "aa", 1, serde_json::json!({"env": {"A": "1"}}))
        .await
        .unwrap();
    assert_eq!((v1.active_version, v1.versions.len()), (1, 1));
    let v2 = f
        .store
        .add_function_version("fn", "bb", 2, serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(v2.active_version, 2);
    assert_eq!(
        v2.versions[0].config,
        serde_json::json!({"env": {"A": "1"}})
    );
    assert_eq!(v2.versions[1].sha256, "bb");
    let rolled = f.store.activate_version("fn", 1).await.unwrap();
    assert_eq!(rolled.active_version, 1);
    let err = f.store.activate_version("fn", 9).await.unwrap_err();
    assert!(
        matches!(err, Error::VersionNotFound { version: 9, .. }),
        "{err}"
    );

    let t = TriggerRecord {
        function: "fn".into(),
        queue: "q".into(),
        batch_size: 10,
        max_wait_ms: 50,
        max_concurrency: 1,
        paused: false,
    };
    let err = f
        .store
        .put_trigger(TriggerRecord {
            queue: "nope".into(),
            ..t.clone()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::QueueNotFound(_)), "{err}");
    let err = f
        .store
        .put_trigger(TriggerRecord {
            function: "ghost".into(),
            ..t.clone()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::FunctionNotFound(_)), "{err}");
    f.store.put_trigger(t.clone()).await.unwrap();
    let paused = TriggerRecord {
        paused: true,
        batch_size: 5,
        ..t.clone()
    };
    f.store.put_trigger(paused.clone()).await.unwrap();
    assert_eq!(
        f.store.list_triggers().await.unwrap(),
        std::slice::from_ref(&paused)
    );
    assert_eq!(
        f.store.get_function("fn").await.unwrap().trigger,
        Some(paused)
    );

    f.store
        .add_function_version("other", "cc", 3, serde_json::json!(null))
        .await
        .unwrap();
    let err = f
        .store
        .put_trigger(TriggerRecord {
            function: "other".into(),
            ..t.clone()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::QueueHasConsumer { ref function, .. } if function == "fn"),
        "{err}"
    );
    f.store
        .put_trigger(TriggerRecord {
            function: "other".into(),
            queue: "q2".into(),
            ..t
        })
        .await
        .unwrap();
    assert_eq!(f.store.list_functions().await.unwrap().len(), 2);

    f.store.delete_function("fn").await.unwrap();
    assert_eq!(f.store.list_triggers().await.unwrap().len(), 1);
    assert!(matches!(
        f.store.delete_function("fn").await,
        Err(Error::FunctionNotFound(_))
    ));
    f.store.delete_queue("q").await.unwrap();
}

async fn counters_add_up(f: Fixture) {
    f.queue("dlq", QueueSettings::default()).await;
    f.queue(
        "q",
        QueueSettings {
            max_attempts: 1,
            dead_letter_queue: Some("dlq".into()),
            ..Default::default()
        },
    )
    .await;
    f.store
        .enqueue("q", (0..4).map(|i| msg(&i.to_string())).collect())
        .await
        .unwrap();
    let lease = f.lease("q", 4).await;
    let m = &lease.messages;
    let s = Settlement {
        ack: vec![m[0].id.clone(), m[1].id.clone()],
        retry: vec![Retry {
            id: m[2].id.clone(),
            delay_ms: 0,
            error: "e".into(),
        }],
        dead_letter: vec![DeadLetter {
            id: m[3].id.clone(),
            reason: "r".into(),
        }],
        send: vec![("q".into(), msg("again"))],
        ..Settlement::default()
    };
    let settled = f.store.settle(&lease, s).await.unwrap();
    assert_eq!(
        settled,
        Settled {
            acked: 2,
            dead_lettered: 2,
            sent: 1,
            ..Default::default()
        }
    );
    let q = f.stats("q").await;
    assert_eq!(
        (
            q.enqueued_total,
            q.acked_total,
            q.retried_total,
            q.dead_lettered_total,
            q.dropped_total
        ),
        (5, 2, 0, 2, 0)
    );
    assert_eq!(f.stats("dlq").await.enqueued_total, 2);
    let listed = f.store.list_queues().await.unwrap();
    assert_eq!(
        listed.iter().map(|q| q.name.as_str()).collect::<Vec<_>>(),
        ["dlq", "q"]
    );
    assert_eq!(listed[1].stats, q);
}

/// Many concurrent single-message enqueues share commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_enqueues_share_commits() {
    let f = open();
    f.queue("q", QueueSettings::default()).await;
    let before = f.store.commits();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = f.store.clone();
            tokio::spawn(async move { store.enqueue("q", vec![msg(&i.to_string())]).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let commits = f.store.commits() - before;
    assert_eq!(f.stats("q").await.visible, 200);
    assert!(commits < 200, "{commits} commits for 200 enqueues");
}

/// A full disk fails the requests of that commit, and the writer serves the next ones once
/// space is back. `max_page_count` makes SQLite report SQLITE_FULL like a full disk would.
#[tokio::test]
async fn storage_full_is_unavailable_and_recoverable() {
    let (f, sqlite) = open_sqlite();
    f.queue(
        "q",
        QueueSettings {
            max_message_bytes: 1024 * 1024,
            ..Default::default()
        },
    )
    .await;
    let pages: i64 = sqlite
        .write(|tx| Ok(tx.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?))
        .await
        .unwrap();
    let cap = move |n: i64| {
        move |tx: &mut super::sqlite::writer::Tx<'_>| -> Result<()> {
            tx.conn
                .query_row(&format!("PRAGMA max_page_count = {n}"), [], |_| Ok(()))?;
            Ok(())
        }
    };
    sqlite.write(cap(pages + 2)).await.unwrap();
    let big = NewMessage {
        body: vec![7; 512 * 1024],
        ..Default::default()
    };
    let err = f.store.enqueue("q", vec![big.clone()]).await.unwrap_err();
    assert!(
        matches!(err, Error::Unavailable(ref m) if m.contains("full")),
        "{err}"
    );
    sqlite.write(cap(1_000_000)).await.unwrap();
    f.store.enqueue("q", vec![big]).await.unwrap();
    assert_eq!(f.stats("q").await.visible, 1);
    assert_eq!(f.stats("q").await.enqueued_total, 1);
}

/// A transaction of leases alone commits without the fsync (`synchronous=NORMAL`); every other
/// transaction is fsynced (`FULL`), whatever ran before it.
#[tokio::test]
async fn only_a_lease_commits_without_the_fsync() {
    let (_f, sqlite) = open_sqlite();
    let synchronous = |tx: &mut super::sqlite::writer::Tx<'_>| -> Result<i64> {
        Ok(tx.conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?)
    };
    const NORMAL: i64 = 1;
    const FULL: i64 = 2;
    assert_eq!(sqlite.write(synchronous).await.unwrap(), FULL);
    assert_eq!(sqlite.write_lease(synchronous).await.unwrap(), NORMAL);
    assert_eq!(sqlite.write_lease(synchronous).await.unwrap(), NORMAL);
    assert_eq!(sqlite.write(synchronous).await.unwrap(), FULL);
}

#[test]
fn data_dir_is_created() {
    let dir = TempDir::new().unwrap();
    let nested = dir.path().join("a/b");
    let store = Store::open(&nested, StoreOptions::default()).unwrap();
    drop(store);
    assert!(nested.join("sluice.db").exists());
}

/// Any local user could read message bodies from a 0755 directory and a 0644 database.
#[cfg(unix)]
#[test]
fn data_dir_and_database_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(&data, StoreOptions::default()).unwrap();
    let mode = |name: &str| {
        std::fs::metadata(data.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(""), 0o700, "data directory");
    for file in ["sluice.db", "sluice.db-wal", "sluice.db-shm"] {
        assert_eq!(mode(file), 0o600, "{file}");
    }
    drop(store);
    // A database made by an older Sluice is tightened when opened.
    std::fs::set_permissions(
        data.join("sluice.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    drop(Store::open(&data, StoreOptions::default()).unwrap());
    assert_eq!(mode("sluice.db"), 0o600);
}

async fn dead_letter_cycles_are_refused(f: Fixture) {
    f.queue("c", QueueSettings::default()).await;
    let dlq = |name: &str| QueueSettings {
        dead_letter_queue: Some(name.into()),
        ..Default::default()
    };
    f.queue("b", dlq("c")).await;
    f.queue("a", dlq("b")).await;
    for (queue, target, cycle) in [("b", "a", "b → a → b"), ("c", "a", "c → a → b → c")] {
        let err = f.store.update_queue(queue, dlq(target)).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidSettings(ref m) if m.contains(cycle)),
            "{err}"
        );
    }
    // A chain that ends is fine, and nothing was changed by the refusals.
    f.store
        .update_queue("c", QueueSettings::default())
        .await
        .unwrap();
    let b = f.store.get_queue("b").await.unwrap();
    assert_eq!(b.settings.dead_letter_queue.as_deref(), Some("c"));
}

#[test]
fn fixture_dir_is_used() {
    let f = open();
    assert!(f.dir.path().join("sluice.db").exists());
}

/// Throughput of the store alone, release mode:
/// `cargo test --release -p sluice-host --lib store::tests::throughput -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run in release"]
async fn throughput() {
    const TOTAL: usize = 200_000;
    const BATCH: usize = 100;
    let dir = TempDir::new().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    store
        .create_queue("q", QueueSettings::default())
        .await
        .unwrap();
    let batch = || {
        (0..BATCH)
            .map(|_| NewMessage {
                body: vec![b'x'; 256],
                ..Default::default()
            })
            .collect()
    };

    let start = std::time::Instant::now();
    for _ in 0..TOTAL / BATCH {
        store.enqueue("q", batch()).await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "enqueue, batches of {BATCH}, one producer: {:.0} msg/s",
        TOTAL as f64 / secs
    );

    let start = std::time::Instant::now();
    let mut done = 0;
    while let Some(lease) = store.lease("q", BATCH, None).await.unwrap() {
        done += lease.messages.len();
        store.settle(&lease, ack_all(&lease)).await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(done, TOTAL);
    println!(
        "lease + ack, batches of {BATCH}: {:.0} msg/s",
        TOTAL as f64 / secs
    );

    // Single-message enqueues from many concurrent producers: group commit at work.
    const PRODUCERS: usize = 64;
    const EACH: usize = 500;
    let commits = store.commits();
    let start = std::time::Instant::now();
    let tasks: Vec<_> = (0..PRODUCERS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..EACH {
                    let m = NewMessage {
                        body: vec![b'x'; 256],
                        ..Default::default()
                    };
                    store.enqueue("q", vec![m]).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let n = PRODUCERS * EACH;
    println!(
        "enqueue, 1 message each, {PRODUCERS} concurrent producers: {:.0} msg/s, {} commits for {n} requests",
        n as f64 / secs,
        store.commits() - commits
    );
}

/// The plan of `statement` (with `params`), one detail line per step.
fn plan(conn: &rusqlite::Connection, statement: &str, params: impl rusqlite::Params) -> String {
    let mut stmt = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {statement}"))
        .unwrap();
    let rows: Vec<String> = stmt
        .query_map(params, |r| r.get(3))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    rows.join("\n")
}

/// Peek, lease, stats, redrive, retention and purge walk an index in its order: none of them
/// reads a whole queue or sorts it, so their cost does not grow with the queue's depth.
#[tokio::test]
async fn queue_reads_walk_indexes_without_sorting() {
    let (f, sqlite) = open_sqlite();
    f.queue("q", QueueSettings::default()).await;
    let plans = sqlite
        .read(|conn, _| {
            let q = "q";
            Ok([
                ("peek", plan(conn, sql::PEEK, rusqlite::params![q, 0, 1])),
                (
                    "lease",
                    plan(conn, sql::visible_in_order(0), rusqlite::params![q, 0, 1]),
                ),
                (
                    "next visible",
                    plan(conn, sql::NEXT_VISIBLE_AT, rusqlite::params![q, 0]),
                ),
                (
                    "visible count",
                    plan(conn, sql::VISIBLE_COUNT, rusqlite::params![q, 0, 1]),
                ),

                (
                    "stats",
                    plan(conn, sql::QUEUE_NOT_DUE, rusqlite::params![q, 0]),
                ),
                ("oldest", plan(conn, sql::QUEUE_OLDEST, [q])),
                (
                    "redrive",
                    plan(conn, sql::REDRIVABLE, rusqlite::params![q, 0, 0, 1]),
                ),
                (
                    "retention",
                    plan(conn, sql::OLDEST_OF_QUEUE, rusqlite::params![q, 1]),
                ),
                (
                    "purge",
                    plan(
                        conn,
                        "SELECT id FROM messages WHERE queue = ?1 AND id <= ?2 ORDER BY id LIMIT ?3",
                        rusqlite::params![q, 0, 1],
                    ),
                ),
            ])
        })
        .await
        .unwrap();
    for (what, plan) in plans {
        assert!(!plan.contains("TEMP B-TREE"), "{what} sorts:\n{plan}");
        assert!(
            plan.contains(" INDEX ") || plan.contains("PRIMARY KEY"),
            "{what} reads no index:\n{plan}"
        );
        let wanted = match what {
            "lease" | "next visible" | "visible count" => "messages_by_lane",
            "stats" => "message_due",
            _ => "messages_by_queue",
        };
        assert!(
            plan.contains(wanted),
            "{what} does not use {wanted}:\n{plan}"
        );
    }
}

/// Enqueues `n` small messages to `queue`, 500 per request.
async fn fill(f: &Fixture, queue: &str, n: u64) {
    let mut left = n;
    while left > 0 {
        let k = left.min(500);
        let batch = (0..k).map(|_| msg("x")).collect();
        f.store.enqueue(queue, batch).await.unwrap();
        left -= k;
    }
}

/// Bulk deletes and moves run as many bounded requests, each its own commit, so the writer
/// answers other queues between them instead of after the whole operation.
#[tokio::test]
async fn bulk_operations_commit_in_chunks() {
    use messages::BULK_CHUNK;
    let f = open();
    let n = 2 * BULK_CHUNK + 10;
    let chunks = n.div_ceil(BULK_CHUNK);
    f.queue("dlq", QueueSettings::default()).await;
    f.queue(
        "q",
        QueueSettings {
            retention_ms: 1_000,
            dead_letter_queue: Some("dlq".into()),
            ..Default::default()
        },
    )
    .await;

    fill(&f, "q", n).await;
    let before = f.store.commits();
    assert_eq!(f.store.purge("q").await.unwrap(), n);
    assert!(f.store.commits() - before >= chunks, "purge in one commit");
    assert_eq!(f.stats("q").await.visible, 0);

    fill(&f, "q", n).await;
    f.clock.advance(2_000);
    let before = f.store.commits();
    assert_eq!(f.store.expire_now().await.unwrap(), n);
    assert!(f.store.commits() - before >= chunks, "expiry in one commit");
    assert_eq!(f.stats("q").await.expired_total, n);

    // Dead-letter them all, then redrive them back.
    fill(&f, "q", n).await;
    loop {
        let Some(lease) = f.store.lease("q", 10_000, None).await.unwrap() else {
            break;
        };
        let dead = Settlement {
            dead_letter: lease
                .messages
                .iter()
                .map(|m| DeadLetter {
                    id: m.id.clone(),
                    reason: "r".into(),
                })
                .collect(),
            ..Default::default()
        };
        f.store.settle(&lease, dead).await.unwrap();
    }
    assert_eq!(f.stats("dlq").await.visible, n);
    let before = f.store.commits();
    assert_eq!(f.store.redrive("dlq", None, None).await.unwrap(), n);
    assert!(
        f.store.commits() - before >= chunks,
        "redrive in one commit"
    );
    assert_eq!(
        (f.stats("q").await.visible, f.stats("dlq").await.visible),
        (n, 0)
    );

    let before = f.store.commits();
    f.store
        .update_queue("q", QueueSettings::default())
        .await
        .unwrap();
    f.store.delete_queue("q").await.unwrap();
    assert!(
        f.store.commits() - before > chunks,
        "queue delete in one commit"
    );
    f.queue("q", QueueSettings::default()).await;
    assert_eq!(f.stats("q").await, QueueStats::default());
    assert!(f.store.peek("q", 1, None).await.unwrap().is_empty());
}

/// A database from before the counters gets them from one recount when it is opened.
#[tokio::test]
async fn counters_are_built_for_an_older_database() {
    let dir = TempDir::new().unwrap();
    {
        let conn = rusqlite::Connection::open(dir.path().join("sluice.db")).unwrap();
        conn.pragma_update(None, "application_id", schema::APPLICATION_ID)
            .unwrap();
        for migration in &sql::MIGRATIONS[..2] {
            conn.execute_batch(migration).unwrap();
        }
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.execute(
            "INSERT INTO queues (name, settings, created_at) VALUES ('q', '{}', 0)",
            [],
        )
        .unwrap();
        // Visible, delayed, in flight, and a lease that expired.
        for (visible_at, lease) in [
            (T0 - 5, None),
            (T0 + 500, None),
            (T0 + 900, Some(7)),
            (T0 - 1, Some(8)),
        ] {
            conn.execute(
                "INSERT INTO messages (queue, body, enqueued_at, visible_at, lease_id)
                 VALUES ('q', x'00', ?1, ?2, ?3)",
                rusqlite::params![(T0 - 10) as i64, visible_at as i64, lease],
            )
            .unwrap();
        }
    }
    let clock = Arc::new(ManualClock::new(T0));
    let store = Store::open_with_clock(dir.path(), StoreOptions::default(), clock.clone()).unwrap();
    let stats = store.get_queue("q").await.unwrap().stats;
    assert_eq!(
        (
            stats.visible,
            stats.delayed,
            stats.in_flight,
            stats.oldest_age_ms
        ),
        (2, 1, 1, Some(10))
    );
    clock.advance(1_000);
    let stats = store.get_queue("q").await.unwrap().stats;
    assert_eq!((stats.visible, stats.delayed, stats.in_flight), (4, 0, 0));
    assert_eq!(store.purge("q").await.unwrap(), 4);
}

/// Dead letters stored before the reason had a column of its own take it from their attribute
/// when the database is migrated; other messages, even with a look-alike attribute, take none.
#[tokio::test]
async fn dead_letters_of_an_older_sqlite_database_keep_their_reasons() {
    let dir = TempDir::new().unwrap();
    {
        let conn = rusqlite::Connection::open(dir.path().join("sluice.db")).unwrap();
        conn.pragma_update(None, "application_id", schema::APPLICATION_ID)
            .unwrap();
        for migration in &sql::MIGRATIONS[..11] {
            conn.execute_batch(migration).unwrap();
        }
        conn.pragma_update(None, "user_version", 11).unwrap();
        conn.execute_batch(&old_dead_letters("BLOB")).unwrap();
    }
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_old_dead_letters_migrated(&store).await;
}

/// As [`dead_letters_of_an_older_sqlite_database_keep_their_reasons`], on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_of_an_older_postgres_database_keep_their_reasons() {
    let db = TestDatabase::create().await;
    {
        let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        let connection = tokio::spawn(connection);
        for migration in &super::postgres::schema::MIGRATIONS[..9] {
            client.batch_execute(migration).await.unwrap();
        }
        client
            .batch_execute(
                "CREATE TABLE sluice_schema (version INTEGER NOT NULL);
                 INSERT INTO sluice_schema (version) VALUES (9);",
            )
            .await
            .unwrap();
        client
            .batch_execute(&old_dead_letters("BYTEA"))
            .await
            .unwrap();
        drop(client);
        connection.await.unwrap().unwrap();
    }
    let store = Store::connect_postgres(&db.url, StoreOptions::default(), Arc::new(SystemClock))
        .await
        .unwrap();
    assert_old_dead_letters_migrated(&store).await;
    drop(store);
}

/// Two dead letters and a message put in by hand whose attribute looks like a reason; bodies
/// are cast to the database's binary type.
fn old_dead_letters(binary: &str) -> String {
    format!(
        r#"
INSERT INTO queues (name, settings, created_at) VALUES ('dlq', '{{}}', 0);
INSERT INTO messages (queue, body, attributes, enqueued_at, visible_at, source_queue) VALUES
    ('dlq', CAST('a' AS {binary}),
        '[["k","v"],["sluice-dead-letter-reason","poison"],["sluice-attempts","3"]]', 1, 1, 'q'),
    ('dlq', CAST('b' AS {binary}), '[["sluice-dead-letter-reason","poison"]]', 2, 2, 'q'),
    ('dlq', CAST('c' AS {binary}), '[["sluice-dead-letter-reason","not one"]]', 3, 3, NULL);
"#
    )
}

async fn assert_old_dead_letters_migrated(store: &Store) {
    let counts = store.dead_letter_reasons("dlq", 10).await.unwrap();
    assert_eq!(
        counts,
        ReasonCounts {
            reasons: vec![ReasonCount {
                reason: "poison".into(),
                count: 2
            }],
            distinct: 1,
            without_reason: 1,
        }
    );
    let poison = ReasonFilter::Reason("poison".into());
    let found = store
        .peek_by_reason("dlq", &poison, 10, None)
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|m| m.body.as_slice()).collect::<Vec<_>>(),
        [b"a", b"b"]
    );
}

fn set(bucket: &str, key: &str, value: &str) -> StateWrite {
    StateWrite {
        bucket: bucket.into(),
        key: key.into(),
        op: StateOp::Set(value.as_bytes().to_vec()),
        expect: None,
    }
}

fn increment(bucket: &str, key: &str, delta: i64) -> StateWrite {
    StateWrite {
        bucket: bucket.into(),
        key: key.into(),
        op: StateOp::Increment(delta),
        expect: None,
    }
}

impl Fixture {
    /// The committed value of a key, as text.
    async fn value(&self, bucket: &str, key: &str) -> Option<String> {
        let entry = self.store.kv_get(bucket, key).await.expect("kv get");
        entry.map(|e| String::from_utf8(e.value).expect("utf-8 value"))
    }
}

/// Buckets are named resources: created with an optional expiry, changed by putting them
/// again, listed in name order, deleted with their keys.
async fn buckets_are_created_changed_listed_and_deleted(f: Fixture) {
    let made = f.store.put_bucket("seen", Some(3_600_000)).await.unwrap();
    assert_eq!((made.name.as_str(), made.ttl_ms), ("seen", Some(3_600_000)));
    f.store.put_bucket("counts", None).await.unwrap();
    let changed = f.store.put_bucket("seen", Some(1_000)).await.unwrap();
    assert_eq!(changed.ttl_ms, Some(1_000));
    assert_eq!(changed.created_at_ms, made.created_at_ms);
    let names: Vec<String> = (f.store.list_buckets().await.unwrap().into_iter())
        .map(|b| b.name)
        .collect();
    assert_eq!(names, ["counts", "seen"]);
    assert!(matches!(
        f.store.put_bucket("no spaces", None).await,
        Err(Error::InvalidKv(_))
    ));
    assert!(matches!(
        f.store.put_bucket("zero", Some(0)).await,
        Err(Error::InvalidKv(_))
    ));
    f.store
        .kv_write(vec![set("counts", "a", "1")])
        .await
        .unwrap();
    f.store.delete_bucket("counts").await.unwrap();
    assert!(matches!(
        f.store.kv_get("counts", "a").await,
        Err(Error::BucketNotFound(_))
    ));
    // Created again, it is empty: its keys went with it.
    f.store.put_bucket("counts", None).await.unwrap();
    assert_eq!(f.value("counts", "a").await, None);
    assert!(matches!(
        f.store.delete_bucket("never").await,
        Err(Error::BucketNotFound(_))
    ));
}

/// A settle's state writes commit in its transaction: with the ack, or (when anything of the
/// settle fails) not at all. Increments add to the committed value.
async fn state_commits_with_the_ack_all_or_nothing(f: Fixture) {
    f.queue("q", QueueSettings::default()).await;
    f.store.put_bucket("counts", None).await.unwrap();
    f.store
        .enqueue("q", vec![msg("a"), msg("b")])
        .await
        .unwrap();
    let lease = f.lease("q", 10).await;
    let failing = Settlement {
        state: vec![increment("counts", "n", 2), set("counts", "last", "b")],
        send: vec![("missing".into(), msg("x"))],
        ..ack_all(&lease)
    };
    assert!(f.store.settle(&lease, failing).await.is_err());
    assert_eq!(f.value("counts", "n").await, None);
    assert_eq!(f.stats("q").await.in_flight, 2);
    let to_missing_bucket = Settlement {
        state: vec![increment("counts", "n", 2), increment("nope", "n", 1)],
        ..ack_all(&lease)
    };
    let err = f.store.settle(&lease, to_missing_bucket).await.unwrap_err();
    assert!(
        matches!(err, Error::BucketNotFound(ref b) if b == "nope"),
        "{err}"
    );
    assert_eq!(f.value("counts", "n").await, None);
    let ok = Settlement {
        state: vec![increment("counts", "n", 2), set("counts", "last", "b")],
        ..ack_all(&lease)
    };
    assert_eq!(f.store.settle(&lease, ok).await.unwrap().acked, 2);
    assert_eq!(f.value("counts", "n").await.as_deref(), Some("2"));
    assert_eq!(f.value("counts", "last").await.as_deref(), Some("b"));

    f.store.enqueue("q", vec![msg("c")]).await.unwrap();
    let lease = f.lease("q", 10).await;
    let more = Settlement {
        state: vec![
            increment("counts", "n", 5),
            StateWrite {
                op: StateOp::Delete,
                ..set("counts", "last", "")
            },
        ],
        ..ack_all(&lease)
    };
    f.store.settle(&lease, more).await.unwrap();
    assert_eq!(f.value("counts", "n").await.as_deref(), Some("7"));
    assert_eq!(f.value("counts", "last").await, None);
}

/// A settle whose lease lost a message (it expired and another consumer leased it) commits
/// none of its state and none of its acks: the other consumer's settle counts the message.
async fn a_stale_settle_writes_no_state_and_acks_nothing(f: Fixture) {
    let settings = QueueSettings {
        visibility_timeout_ms: 1_000,
        ..QueueSettings::default()
    };
    f.queue("q", settings).await;
    f.store.put_bucket("counts", None).await.unwrap();
    f.store.enqueue("q", vec![msg("a")]).await.unwrap();
    let first = f.lease("q", 10).await;
    f.clock.advance(1_001);
    let second = f.lease("q", 10).await;
    let stale = Settlement {
        state: vec![increment("counts", "n", 1)],
        ..ack_all(&first)
    };
    let err = f.store.settle(&first, stale).await.unwrap_err();
    assert!(matches!(err, Error::StateConflict(_)), "{err}");
    assert_eq!(f.value("counts", "n").await, None);
    let fresh = Settlement {
        state: vec![increment("counts", "n", 1)],
        ..ack_all(&second)
    };
    assert_eq!(f.store.settle(&second, fresh).await.unwrap().acked, 1);
    assert_eq!(f.value("counts", "n").await.as_deref(), Some("1"));
}

/// A compare-and-swap is checked at commit: if its key changed since the handler read it,
/// nothing of the settle commits (the batch stays leased, to be retried) and the error says
/// it was a state conflict.
async fn a_compare_and_swap_conflict_fails_the_whole_settle(f: Fixture) {
    f.queue("q", QueueSettings::default()).await;
    f.store.put_bucket("b", None).await.unwrap();
    f.store.kv_write(vec![set("b", "k", "one")]).await.unwrap();
    let read = f.store.kv_get("b", "k").await.unwrap().unwrap();
    assert_eq!(read.written_at_ms, T0);
    f.store.enqueue("q", vec![msg("a")]).await.unwrap();
    let lease = f.lease("q", 10).await;
    // Another writer changes the key, even to the same value: its version moves on.
    f.store.kv_write(vec![set("b", "k", "one")]).await.unwrap();
    let now = f.store.kv_get("b", "k").await.unwrap().unwrap();
    assert_ne!(now.version, read.version);
    let swap = |expect| Settlement {
        state: vec![
            increment("b", "other", 1),
            StateWrite {
                expect: Some(expect),
                ..set("b", "k", "two")
            },
        ],
        ..ack_all(&lease)
    };
    let err = f
        .store
        .settle(&lease, swap(read.version))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::StateConflict(_)), "{err}");
    assert_eq!(f.value("b", "k").await.as_deref(), Some("one"));
    assert_eq!(f.value("b", "other").await, None);
    assert_eq!(f.stats("q").await.in_flight, 1);
    // Expecting absence conflicts with any committed key.
    let err = f.store.settle(&lease, swap(0)).await.unwrap_err();
    assert!(matches!(err, Error::StateConflict(_)), "{err}");
    // Read again, the swap holds.
    assert_eq!(
        f.store
            .settle(&lease, swap(now.version))
            .await
            .unwrap()
            .acked,
        1
    );
    assert_eq!(f.value("b", "k").await.as_deref(), Some("two"));
    assert_eq!(f.value("b", "other").await.as_deref(), Some("1"));
    // Deleted and written again, a key never takes an old version back.
    let swapped = f.store.kv_get("b", "k").await.unwrap().unwrap().version;
    let delete = StateWrite {
        op: StateOp::Delete,
        ..set("b", "k", "")
    };
    f.store.kv_write(vec![delete]).await.unwrap();
    f.store.kv_write(vec![set("b", "k", "two")]).await.unwrap();
    let rewritten = f.store.kv_get("b", "k").await.unwrap().unwrap().version;
    assert!(rewritten > swapped, "{rewritten} after {swapped}");
}

/// Keys expire their bucket's `ttl_ms` after their last write: reads and listings hide them
/// at once, before the sweep removes them. Listings page in byte order, by prefix.
async fn expired_keys_are_hidden_and_keys_page_by_prefix(f: Fixture) {
    f.store.put_bucket("seen", Some(1_000)).await.unwrap();
    f.store
        .kv_write(
            ["seen:1", "seen:2", "seen:3", "other", "seen;x"]
                .iter()
                .map(|k| set("seen", k, "1"))
                .collect(),
        )
        .await
        .unwrap();
    let page = f.store.kv_keys("seen", "seen:", None, 2).await.unwrap();
    assert_eq!(page.keys, ["seen:1", "seen:2"]);
    let cursor = page.cursor.expect("more follow");
    let page = f
        .store
        .kv_keys("seen", "seen:", Some(&cursor), 2)
        .await
        .unwrap();
    assert_eq!(
        (page.keys.as_slice(), page.cursor),
        (&["seen:3".to_owned()][..], None)
    );
    let all = f.store.kv_keys("seen", "", None, 100).await.unwrap();
    assert_eq!(all.keys, ["other", "seen:1", "seen:2", "seen:3", "seen;x"]);

    f.clock.advance(600);
    // Written again, a key's expiry starts over.
    f.store
        .kv_write(vec![set("seen", "seen:2", "2")])
        .await
        .unwrap();
    f.clock.advance(400);
    assert_eq!(f.value("seen", "seen:1").await, None);
    assert_eq!(f.value("seen", "seen:2").await.as_deref(), Some("2"));
    let all = f.store.kv_keys("seen", "", None, 100).await.unwrap();
    assert_eq!(all.keys, ["seen:2"]);
    // An increment of an expired key starts from zero.
    f.store
        .kv_write(vec![increment("seen", "seen:1", 5)])
        .await
        .unwrap();
    assert_eq!(f.value("seen", "seen:1").await.as_deref(), Some("5"));
    f.store.expire_now().await.unwrap();
    assert_eq!(f.rows("kv_keys").await, 2);
    assert!(matches!(
        f.store.kv_keys("nope", "", None, 10).await,
        Err(Error::BucketNotFound(_))
    ));
}

/// Keys up to 1 KiB and values up to 1 MiB; anything larger is refused before any backend,
/// and so is a settle carrying it. An increment of a value that is no number fails.
async fn operator_writes_are_validated_and_commit_at_once(f: Fixture) {
    f.store.put_bucket("b", None).await.unwrap();
    let big = StateWrite {
        op: StateOp::Set(vec![0; state::MAX_VALUE_BYTES + 1]),
        ..set("b", "k", "")
    };
    assert!(matches!(
        f.store.kv_write(vec![big]).await,
        Err(Error::InvalidKv(_))
    ));
    let long_key = "k".repeat(state::MAX_KEY_BYTES + 1);
    assert!(matches!(
        f.store.kv_write(vec![set("b", &long_key, "v")]).await,
        Err(Error::InvalidKv(_))
    ));
    let largest = StateWrite {
        op: StateOp::Set(vec![7; state::MAX_VALUE_BYTES]),
        ..set("b", &"k".repeat(state::MAX_KEY_BYTES), "")
    };
    f.store.kv_write(vec![largest]).await.unwrap();
    f.store
        .kv_write(vec![set("b", "word", "abc")])
        .await
        .unwrap();
    assert!(matches!(
        f.store.kv_write(vec![increment("b", "word", 1)]).await,
        Err(Error::StateConflict(_))
    ));
    f.queue("q", QueueSettings::default()).await;
    f.store.enqueue("q", vec![msg("a")]).await.unwrap();
    let lease = f.lease("q", 10).await;
    let settlement = Settlement {
        state: vec![set("b", "", "empty key")],
        ..ack_all(&lease)
    };
    assert!(matches!(
        f.store.settle(&lease, settlement).await,
        Err(Error::InvalidKv(_))
    ));
}

/// Increments from many settles at once (on PostgreSQL, from two hosts' stores) each add
/// their delta to what is committed: none is lost.
async fn concurrent_increments_never_lose_an_update(f: Fixture) {
    const N: usize = 40;
    f.queue("q", QueueSettings::default()).await;
    f.store.put_bucket("counts", None).await.unwrap();
    f.store
        .enqueue("q", (0..N).map(|i| msg(&i.to_string())).collect())
        .await
        .unwrap();
    let other = match &f._db {
        Some(db) => Store::connect_postgres(&db.url, StoreOptions::default(), f.clock.clone())
            .await
            .expect("second host"),
        None => f.store.clone(),
    };
    let mut settles = tokio::task::JoinSet::new();
    for i in 0..N {
        let store = if i % 2 == 0 {
            f.store.clone()
        } else {
            other.clone()
        };
        let lease = f.lease("q", 1).await;
        settles.spawn(async move {
            let settlement = Settlement {
                state: vec![increment("counts", "n", 1), increment("counts", "m", 2)],
                ..ack_all(&lease)
            };
            store.settle(&lease, settlement).await
        });
    }
    while let Some(settled) = settles.join_next().await {
        assert_eq!(settled.expect("settle task").expect("settle").acked, 1);
    }
    assert_eq!(f.value("counts", "n").await, Some(N.to_string()));
    assert_eq!(f.value("counts", "m").await, Some((2 * N).to_string()));
}
