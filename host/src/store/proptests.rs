//! Model-based property test: random sequences of enqueue, lease, extend, settle (by a
//! trigger's lease, with key-value writes, or by a pull consumer's receipts through
//! [`crate::pull`]), redrive, retention sweeps, clock advances and purges, checked step by step
//! against a plain in-memory model of every message's state and every key's value; after every
//! step the counts the queues' stats report must also equal a recount of their messages, on
//! both backends. A settle's writes commit with it or not at all: not when a send fails, not
//! when its lease no longer holds a message it names, not when a compare-and-swap finds its
//! key changed.
//!
//! 32 cases by default; `PROPTEST_CASES=N` sets the number, and CI (env `CI`) runs 128 (about 40 s, most of it fsync).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;
use tempfile::TempDir;

use super::sqlite::{SqliteBackend, sql};
use super::*;

const T0: u64 = 1_000_000;
/// "a" dead-letters into "dead"; "b" drops; "dead" is an ordinary queue too.
const QUEUES: [&str; 3] = ["a", "b", "dead"];
const MAX_ATTEMPTS: [u32; 3] = [3, 2, 5];
const DLQ: [Option<usize>; 3] = [Some(2), None, None];
const VISIBILITY_MS: u64 = 1_000;
/// The keys settles write, in bucket [`BUCKET`].
const KEYS: [&str; 3] = ["k0", "k1", "k2"];
const BUCKET: &str = "b";

#[derive(Debug, Clone)]
enum Op {
    Enqueue {
        queue: usize,
        n: usize,
        delay_ms: u64,
    },
    Lease {
        queue: usize,
        max: usize,
    },
    /// Settle one of the leases taken so far (maybe long stale) with one action per message:
    /// 0 ack, 1 retry now, 2 retry later, 3 dead-letter, 4 leave alone. `send` 3 is a queue that
    /// does not exist, which must fail the whole settlement. `writes` go with it, each to one
    /// of [`KEYS`]: 0 add 1, 1 delete, 2 add 10 by compare-and-swap against the version
    /// committed now, 3 the same against a version the key does not have (a conflict).
    Settle {
        lease: usize,
        actions: Vec<u8>,
        send: Option<usize>,
        writes: Vec<(usize, u8)>,
    },
    Advance(u64),
    Purge(usize),
    /// Extend one of the leases taken so far by this many ms.
    Extend {
        lease: usize,
        ms: u64,
    },
    /// Redrive "dead" back to the sources of its messages, at most this many.
    Redrive(Option<u64>),
    /// The retention sweep (nothing is old enough to expire; it folds due times).
    Sweep,
    /// A pull consumer settles the picked messages of one of the leases taken so far by their
    /// receipts: 0 ack, 1 retry now, 2 dead-letter. With `foreign`, one more receipt names
    /// another queue and must change nothing.
    PullSettle {
        lease: usize,
        action: u8,
        picks: Vec<bool>,
        foreign: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..3usize, 1..4usize, prop_oneof![Just(0u64), Just(500)])
            .prop_map(|(queue, n, delay_ms)| Op::Enqueue { queue, n, delay_ms }),
        3 => (0..3usize, 1..5usize).prop_map(|(queue, max)| Op::Lease { queue, max }),
        3 => (
            any::<usize>(),
            prop::collection::vec(0..5u8, 1..5),
            prop::option::of(0..4usize),
            prop::collection::vec((0..3usize, 0..4u8), 0..3),
        )
            .prop_map(|(lease, actions, send, writes)| Op::Settle { lease, actions, send, writes }),
        2 => prop_oneof![Just(100u64), Just(600), Just(1_500)].prop_map(Op::Advance),
        1 => (0..3usize).prop_map(Op::Purge),
        1 => (any::<usize>(), prop_oneof![Just(200u64), Just(2_000)])
            .prop_map(|(lease, ms)| Op::Extend { lease, ms }),
        1 => prop::option::of(1..3u64).prop_map(Op::Redrive),
        1 => Just(Op::Sweep),
        2 => (any::<usize>(), 0..3u8, prop::collection::vec(any::<bool>(), 1..5), any::<bool>())
            .prop_map(|(lease, action, picks, foreign)| Op::PullSettle { lease, action, picks, foreign }),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    Pending,
    Acked,
    DeadLettered,
    Dropped,
    Purged,
    Redriven,
}

#[derive(Debug, Clone)]
struct ModelMessage {
    queue: usize,
    visible_at: u64,
    lease: Option<i64>,
    attempt: u32,
    fate: Fate,
    /// The queue a dead-lettered message came from.
    source: Option<usize>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Totals {
    enqueued: u64,
    acked: u64,
    retried: u64,
    dead_lettered: u64,
    dropped: u64,
}

#[derive(Debug, Clone)]
struct Model {
    now: u64,
    next_id: i64,
    messages: BTreeMap<i64, ModelMessage>,
    totals: [Totals; 3],
    /// The committed value of each of [`KEYS`] that exists (they hold counters).
    state: BTreeMap<usize, i64>,
}

impl Model {
    fn insert(&mut self, queue: usize, visible_at: u64) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.messages.insert(
            id,
            ModelMessage {
                queue,
                visible_at,
                lease: None,
                attempt: 0,
                fate: Fate::Pending,
                source: None,
            },
        );
        self.totals[queue].enqueued += 1;
        id
    }

    fn held(&self, id: i64, lease: i64) -> bool {
        self.messages
            .get(&id)
            .is_some_and(|m| m.fate == Fate::Pending && m.lease == Some(lease))
    }

    /// Returns true when dead-lettered, false when dropped.
    fn dead_letter(&mut self, id: i64) -> bool {
        let Some(m) = self.messages.get_mut(&id) else {
            return false;
        };
        let queue = m.queue;
        match DLQ[queue] {
            Some(dlq) => {
                m.fate = Fate::DeadLettered;
                self.totals[queue].dead_lettered += 1;
                let copy = self.insert(dlq, self.now);
                self.messages.get_mut(&copy).expect("inserted").source = Some(queue);
                true
            }
            None => {
                m.fate = Fate::Dropped;
                self.totals[queue].dropped += 1;
                false
            }
        }
    }

    /// Ids and attempts a lease must return, applying it.
    fn lease(&mut self, queue: usize, max: usize, lease_id: i64) -> Vec<(i64, u32)> {
        let mut candidates: Vec<(u64, i64)> = self
            .messages
            .iter()
            .filter(|(_, m)| {
                m.queue == queue && m.fate == Fate::Pending && m.visible_at <= self.now
            })
            .map(|(id, m)| (m.visible_at, *id))
            .collect();
        candidates.sort();
        let mut leased = Vec::new();
        for (_, id) in candidates {
            if leased.len() == max {
                break;
            }
            if self.messages[&id].attempt >= MAX_ATTEMPTS[queue] {
                self.dead_letter(id);
                continue;
            }
            let now = self.now;
            let m = self.messages.get_mut(&id).expect("candidate exists");
            m.lease = Some(lease_id);
            m.visible_at = now + VISIBILITY_MS;
            m.attempt += 1;
            leased.push((id, m.attempt));
        }
        leased
    }
}

/// Store state as the model sees it: pending ids per queue, live counts, totals.
type Snapshot = Vec<(BTreeSet<i64>, (u64, u64, u64), Totals)>;

fn model_snapshot(model: &Model) -> Snapshot {
    (0..3)
        .map(|q| {
            let mut ids = BTreeSet::new();
            let mut counts = (0, 0, 0);
            for (id, m) in &model.messages {
                if m.queue != q || m.fate != Fate::Pending {
                    continue;
                }
                ids.insert(*id);
                if m.visible_at <= model.now {
                    counts.0 += 1;
                } else if m.lease.is_none() {
                    counts.1 += 1;
                } else {
                    counts.2 += 1;
                }
            }
            (ids, counts, model.totals[q].clone())
        })
        .collect()
}

/// The committed value of each of [`KEYS`] that exists.
async fn store_state(store: &Store) -> BTreeMap<usize, i64> {
    let mut state = BTreeMap::new();
    for (i, key) in KEYS.iter().enumerate() {
        if let Some(entry) = store.kv_get(BUCKET, key).await.expect("kv get") {
            let value = std::str::from_utf8(&entry.value).expect("a counter");
            state.insert(i, value.parse().expect("a decimal counter"));
        }
    }
    state
}

async fn store_snapshot(store: &Store) -> Snapshot {
    let mut snapshot = Vec::new();
    for q in QUEUES {
        let info = store.get_queue(q).await.expect("get queue");
        let s = info.stats;
        let ids: BTreeSet<i64> = store
            .peek(q, 100_000, None)
            .await
            .expect("peek")
            .iter()
            .map(|m| m.id.parse().expect("numeric id"))
            .collect();
        let totals = Totals {
            enqueued: s.enqueued_total,
            acked: s.acked_total,
            retried: s.retried_total,
            dead_lettered: s.dead_lettered_total,
            dropped: s.dropped_total,
        };
        snapshot.push((ids, (s.visible, s.delayed, s.in_flight), totals));
    }
    snapshot
}

/// Which backend a run checks against the model.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Sqlite,
    Postgres,
}

/// Visible, delayed, in flight, oldest enqueue time.
type Recount = (i64, i64, i64, Option<i64>);

/// Counts a queue's messages straight from the database, apart from the store's counters.
enum Recounter {
    /// SQLite keeps O(1) counters (and `message_due` entries) the recount checks.
    Sqlite(Arc<SqliteBackend>),
    /// PostgreSQL's live counts come from their own query; the recount is a second one.
    Postgres(tokio_postgres::Client),
}

/// PostgreSQL's recount of one queue at `$2`, in the shape of SQLite's `QUEUE_RECOUNT`.
const PG_QUEUE_RECOUNT: &str = "SELECT
    count(*) FILTER (WHERE visible_at <= $2),
    count(*) FILTER (WHERE visible_at > $2 AND lease_id IS NULL),
    count(*) FILTER (WHERE visible_at > $2 AND lease_id IS NOT NULL),
    min(enqueued_at)
    FROM messages WHERE queue = $1";

impl Recounter {
    async fn connect(url: &str) -> Recounter {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        Recounter::Postgres(client)
    }

    /// The recount of queue `q` at `now`; on SQLite also the `message_due` invariants (no
    /// empty entries, none due at or before `due_through`) and the depth counter.
    async fn recount(&self, q: &'static str, now: u64) -> Result<Recount, TestCaseError> {
        match self {
            Recounter::Sqlite(sqlite) => {
                let (recount, depth, due): (Recount, i64, (i64, i64)) = sqlite
                    .read(move |conn, _| {
                        let (depth, visible, delayed, in_flight, oldest) = conn
                            .prepare(sql::QUEUE_RECOUNT)?
                            .query_row(rusqlite::params![q, now as i64], |r| {
                                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                            })?;
                        let due = conn.query_row(
                            "SELECT
                        (SELECT count(*) FROM message_due WHERE queue = ?1
                            AND (ready < 0 OR leased < 0 OR (ready = 0 AND leased = 0)
                            OR visible_at <= (SELECT due_through FROM queues WHERE name = ?1))),
                        (SELECT depth FROM queues WHERE name = ?1)",
                            [q],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )?;
                        Ok(((visible, delayed, in_flight, oldest), depth, due))
                    })
                    .await
                    .expect("recount");
                prop_assert_eq!(due.0, 0, "bad message_due entries in {}", q);
                prop_assert_eq!(due.1, depth, "depth counter of {}", q);
                Ok(recount)
            }
            Recounter::Postgres(client) => {
                let row = client
                    .query_one(PG_QUEUE_RECOUNT, &[&q, &(now as i64)])
                    .await
                    .expect("recount");
                Ok((row.get(0), row.get(1), row.get(2), row.get(3)))
            }
        }
    }
}

/// The counts stats report against a recount of the queue's messages, on either backend.
async fn check_counters(
    recounter: &Recounter,
    store: &Store,
    now: u64,
) -> Result<(), TestCaseError> {
    for q in QUEUES {
        let stats = store.get_queue(q).await.expect("get queue").stats;
        let (visible, delayed, in_flight, oldest) = recounter.recount(q, now).await?;
        prop_assert_eq!(
            (stats.visible, stats.delayed, stats.in_flight),
            (visible as u64, delayed as u64, in_flight as u64),
            "live counts of {}",
            q
        );
        prop_assert_eq!(
            stats.oldest_age_ms,
            oldest.map(|t| now - t as u64),
            "oldest of {}",
            q
        );
    }
    Ok(())
}

async fn run(ops: Vec<Op>, kind: Kind) -> Result<(), TestCaseError> {
    let dir = TempDir::new().expect("temp dir");
    let clock = Arc::new(ManualClock::new(T0));
    let (store, recounter, _db) = match kind {
        Kind::Sqlite => {
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
            let store = Store::with_backend(sqlite.clone(), events, clock.clone()).expect("store");
            (store, Recounter::Sqlite(sqlite), None)
        }
        Kind::Postgres => {
            let db = sluice_test_support::testdb::TestDatabase::create().await;
            let store = Store::connect_postgres(&db.url, StoreOptions::default(), clock.clone())
                .await
                .expect("connect");
            (store, Recounter::connect(&db.url).await, Some(db))
        }
    };
    for q in [2, 0, 1] {
        let settings = QueueSettings {
            max_attempts: MAX_ATTEMPTS[q],
            visibility_timeout_ms: VISIBILITY_MS,
            dead_letter_queue: DLQ[q].map(|d| QUEUES[d].to_string()),
            ..Default::default()
        };
        store
            .create_queue(QUEUES[q], settings)
            .await
            .expect("create");
    }
    store.put_bucket(BUCKET, None).await.expect("bucket");
    let mut model = Model {
        now: T0,
        next_id: 1,
        messages: BTreeMap::new(),
        totals: Default::default(),
        state: BTreeMap::new(),
    };
    let mut leases: Vec<Lease> = Vec::new();
    let mut acked: BTreeSet<i64> = BTreeSet::new();

    for op in ops {
        match op {
            Op::Enqueue { queue, n, delay_ms } => {
                let msgs = (0..n)
                    .map(|i| NewMessage {
                        body: vec![i as u8],
                        delay_ms,
                        ..Default::default()
                    })
                    .collect();
                let got = store.enqueue(QUEUES[queue], msgs).await.expect("enqueue");
                let want: Vec<String> = (0..n)
                    .map(|_| model.insert(queue, model.now + delay_ms).to_string())
                    .collect();
                prop_assert_eq!(got.into_iter().map(|e| e.id).collect::<Vec<_>>(), want);
            }
            Op::Lease { queue, max } => {
                let got = store.lease(QUEUES[queue], max, None).await.expect("lease");
                let lease_id = got.as_ref().map_or(0, |l| l.id);
                let want = model.lease(queue, max, lease_id);
                let got_ids: Vec<(i64, u32)> = got
                    .iter()
                    .flat_map(|l| &l.messages)
                    .map(|m| (m.id.parse().expect("decimal id"), m.attempt))
                    .collect();
                prop_assert_eq!(&got_ids, &want);
                for (id, _) in &got_ids {
                    prop_assert!(!acked.contains(id), "acked message {} delivered again", id);
                }
                leases.extend(got);
            }
            Op::Settle {
                lease,
                actions,
                send,
                writes,
            } => {
                if leases.is_empty() {
                    continue;
                }
                let lease = leases[lease % leases.len()].clone();
                let mut settlement = Settlement::default();
                for (i, m) in lease.messages.iter().enumerate() {
                    let id = m.id.clone();
                    match actions[i % actions.len()] {
                        0 => settlement.ack.push(id),
                        1 => settlement.retry.push(Retry {
                            id,
                            delay_ms: 0,
                            error: "now".into(),
                        }),
                        2 => settlement.retry.push(Retry {
                            id,
                            delay_ms: 300,
                            error: "later".into(),
                        }),
                        3 => settlement.dead_letter.push(DeadLetter {
                            id,
                            reason: "bad".into(),
                        }),
                        _ => {}
                    }
                }
                let target = send.map(|q| QUEUES.get(q).copied().unwrap_or("missing"));
                if let Some(target) = target {
                    settlement
                        .send
                        .push((target.to_string(), NewMessage::default()));
                }
                let mut swap_conflicts = false;
                for (key, kind) in &writes {
                    let (op, expect) = match kind {
                        0 => (StateOp::Increment(1), None),
                        1 => (StateOp::Delete, None),
                        kind => {
                            let version = store
                                .kv_get(BUCKET, KEYS[*key])
                                .await
                                .expect("kv get")
                                .map_or(state::ABSENT, |entry| entry.version);
                            swap_conflicts |= *kind == 3;
                            let expect = if *kind == 2 { version } else { version + 1 };
                            (StateOp::Increment(10), Some(expect))
                        }
                    };
                    settlement.state.push(StateWrite {
                        bucket: BUCKET.into(),
                        key: KEYS[*key].into(),
                        op,
                        expect,
                    });
                }
                // The writes cannot commit when the lease no longer holds a message it settles.
                let lost_message = settlement
                    .ack
                    .iter()
                    .chain(settlement.retry.iter().map(|r| &r.id))
                    .chain(settlement.dead_letter.iter().map(|d| &d.id))
                    .any(|id| !model.held(id.parse().expect("id"), lease.id));
                let conflict = !writes.is_empty() && (swap_conflicts || lost_message);
                let before = (store_snapshot(&store).await, store_state(&store).await);
                let got = store.settle(&lease, settlement.clone()).await;
                if target == Some("missing") || conflict {
                    // A send to a missing queue is refused before anything else is looked at.
                    if target == Some("missing") {
                        prop_assert!(matches!(got, Err(Error::QueueNotFound(_))), "{:?}", got);
                    } else {
                        prop_assert!(matches!(got, Err(Error::StateConflict(_))), "{:?}", got);
                    }
                    prop_assert_eq!(
                        (store_snapshot(&store).await, store_state(&store).await),
                        before,
                        "a failed settle changed nothing"
                    );
                    continue;
                }
                let got = got.expect("settle");
                let mut want = Settled::default();
                for id in &settlement.ack {
                    let id: i64 = id.parse().expect("id");
                    if model.held(id, lease.id) {
                        let m = model.messages.get_mut(&id).expect("held");
                        m.fate = Fate::Acked;
                        model.totals[m.queue].acked += 1;
                        acked.insert(id);
                        want.acked += 1;
                    } else {
                        want.stale.push(id.to_string());
                    }
                }
                for r in &settlement.retry {
                    let id: i64 = r.id.parse().expect("id");
                    if !model.held(id, lease.id) {
                        want.stale.push(r.id.clone());
                        continue;
                    }
                    let queue = model.messages[&id].queue;
                    if model.messages[&id].attempt >= MAX_ATTEMPTS[queue] {
                        if model.dead_letter(id) {
                            want.dead_lettered += 1;
                        } else {
                            want.dropped += 1;
                        }
                        continue;
                    }
                    let now = model.now;
                    let m = model.messages.get_mut(&id).expect("held");
                    m.lease = None;
                    m.visible_at = now + r.delay_ms;
                    model.totals[queue].retried += 1;
                    want.retried += 1;
                }
                for d in &settlement.dead_letter {
                    let id: i64 = d.id.parse().expect("id");
                    if !model.held(id, lease.id) {
                        want.stale.push(d.id.clone());
                    } else if model.dead_letter(id) {
                        want.dead_lettered += 1;
                    } else {
                        want.dropped += 1;
                    }
                }
                if let Some(q) = send {
                    model.insert(q, model.now);
                    want.sent += 1;
                }
                for (key, kind) in &writes {
                    match kind {
                        0 => *model.state.entry(*key).or_default() += 1,
                        1 => {
                            model.state.remove(key);
                        }
                        _ => *model.state.entry(*key).or_default() += 10,
                    }
                }
                prop_assert_eq!(got, want);
            }
            Op::Advance(ms) => {
                clock.advance(ms);
                model.now += ms;
            }
            Op::Purge(queue) => {
                let purged = store.purge(QUEUES[queue]).await.expect("purge");
                let mut want = 0;
                for m in model.messages.values_mut() {
                    if m.queue == queue && m.fate == Fate::Pending {
                        m.fate = Fate::Purged;
                        want += 1;
                    }
                }
                prop_assert_eq!(purged, want);
            }
            Op::Extend { lease, ms } => {
                if leases.is_empty() {
                    continue;
                }
                let lease = leases[lease % leases.len()].clone();
                let got = store
                    .extend(&lease, std::time::Duration::from_millis(ms))
                    .await
                    .expect("extend");
                let mut want = 0;
                for m in &lease.messages {
                    let id: i64 = m.id.parse().expect("id");
                    if model.held(id, lease.id) {
                        model.messages.get_mut(&id).expect("held").visible_at = model.now + ms;
                        want += 1;
                    }
                }
                prop_assert_eq!(got, want);
            }
            Op::Redrive(limit) => {
                let got = store.redrive("dead", None, limit).await.expect("redrive");
                let now = model.now;
                let movable: Vec<(i64, usize)> = model
                    .messages
                    .iter()
                    .filter(|(_, m)| {
                        m.queue == 2
                            && m.fate == Fate::Pending
                            && (m.lease.is_none() || m.visible_at <= now)
                    })
                    .filter_map(|(id, m)| Some((*id, m.source?)))
                    .take(limit.map_or(usize::MAX, |l| l as usize))
                    .collect();
                for (id, source) in &movable {
                    model.messages.get_mut(id).expect("movable").fate = Fate::Redriven;
                    model.insert(*source, now);
                }
                prop_assert_eq!(got, movable.len() as u64);
            }
            Op::Sweep => {
                prop_assert_eq!(store.expire_now().await.expect("sweep"), 0);
            }
            Op::PullSettle {
                lease,
                action,
                picks,
                foreign,
            } => {
                if leases.is_empty() {
                    continue;
                }
                let lease = leases[lease % leases.len()].clone();
                let receipt = |m: &Message, queue: &str| {
                    crate::pull::Receipt {
                        queue: queue.to_owned(),
                        lease: lease.id,
                        id: m.id.clone(),
                        attempt: m.attempt,
                    }
                    .encode()
                };
                let picked: Vec<&Message> = lease
                    .messages
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| picks[i % picks.len()])
                    .map(|(_, m)| m)
                    .collect();
                let mut receipts: Vec<String> =
                    picked.iter().map(|m| receipt(m, &lease.queue)).collect();
                if foreign && let Some(m) = lease.messages.first() {
                    let other = QUEUES.iter().find(|q| **q != lease.queue).expect("another");
                    receipts.push(receipt(m, other));
                }
                if receipts.is_empty() {
                    continue;
                }
                let pull_action = match action {
                    0 => crate::pull::Action::ack(),
                    1 => crate::pull::Action::Retry {
                        delay: Some(std::time::Duration::ZERO),
                    },
                    _ => crate::pull::Action::DeadLetter {
                        reason: "pulled".into(),
                    },
                };
                let got = crate::pull::settle(&store, &lease.queue, &receipts, &pull_action)
                    .await
                    .expect("pull settle");
                let mut want = Vec::new();
                for m in &picked {
                    let id: i64 = m.id.parse().expect("id");
                    if !model.held(id, lease.id) {
                        want.push(crate::pull::Outcome::Stale);
                        continue;
                    }
                    want.push(crate::pull::Outcome::Done);
                    let queue = model.messages[&id].queue;
                    match action {
                        0 => {
                            model.messages.get_mut(&id).expect("held").fate = Fate::Acked;
                            model.totals[queue].acked += 1;
                            acked.insert(id);
                        }
                        1 if model.messages[&id].attempt < MAX_ATTEMPTS[queue] => {
                            let now = model.now;
                            let m = model.messages.get_mut(&id).expect("held");
                            m.lease = None;
                            m.visible_at = now;
                            model.totals[queue].retried += 1;
                        }
                        _ => {
                            model.dead_letter(id);
                        }
                    }
                }
                if receipts.len() > picked.len() {
                    prop_assert!(
                        matches!(got.last(), Some(crate::pull::Outcome::Invalid(_))),
                        "{:?}",
                        got
                    );
                    want.push(got.last().expect("foreign outcome").clone());
                }
                prop_assert_eq!(got, want);
            }
        }
        prop_assert_eq!(store_snapshot(&store).await, model_snapshot(&model));
        prop_assert_eq!(&store_state(&store).await, &model.state, "committed state");
        check_counters(&recounter, &store, model.now).await?;
    }
    // Every message ever enqueued is in exactly one state, and the ids were all accounted for.
    prop_assert_eq!(model.messages.len() as i64, model.next_id - 1);
    Ok(())
}

/// How many cases a property test of the store runs: `PROPTEST_CASES` when set; otherwise
/// `default`, four times over in CI (env `CI`), where there is time to look harder.
pub(super) fn cases(default: u32) -> u32 {
    match std::env::var("PROPTEST_CASES") {
        Ok(n) => n.parse().expect("PROPTEST_CASES must be a whole number"),
        Err(_) if std::env::var_os("CI").is_some() => default * 4,
        Err(_) => default,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(32), ..ProptestConfig::default() })]

    #[test]
    fn sqlite_store_matches_model(ops in prop::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(run(ops, Kind::Sqlite))?;
    }

    #[test]
    fn postgres_store_matches_model(ops in prop::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        runtime.block_on(run(ops, Kind::Postgres))?;
    }
}
