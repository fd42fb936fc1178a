//! Model-based property test: random sequences of enqueue, lease, settle, clock advances and
//! purges, checked step by step against a plain in-memory model of every message's state.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;
use tempfile::TempDir;

use super::*;

const T0: u64 = 1_000_000;
/// "a" dead-letters into "dead"; "b" drops; "dead" is an ordinary queue too.
const QUEUES: [&str; 3] = ["a", "b", "dead"];
const MAX_ATTEMPTS: [u32; 3] = [3, 2, 5];
const DLQ: [Option<usize>; 3] = [Some(2), None, None];
const VISIBILITY_MS: u64 = 1_000;

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
    /// does not exist, which must fail the whole settlement.
    Settle {
        lease: usize,
        actions: Vec<u8>,
        send: Option<usize>,
    },
    Advance(u64),
    Purge(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..3usize, 1..4usize, prop_oneof![Just(0u64), Just(500)])
            .prop_map(|(queue, n, delay_ms)| Op::Enqueue { queue, n, delay_ms }),
        3 => (0..3usize, 1..5usize).prop_map(|(queue, max)| Op::Lease { queue, max }),
        3 => (any::<usize>(), prop::collection::vec(0..5u8, 1..5), prop::option::of(0..4usize))
            .prop_map(|(lease, actions, send)| Op::Settle { lease, actions, send }),
        2 => prop_oneof![Just(100u64), Just(600), Just(1_500)].prop_map(Op::Advance),
        1 => (0..3usize).prop_map(Op::Purge),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    Pending,
    Acked,
    DeadLettered,
    Dropped,
    Purged,
}

#[derive(Debug, Clone)]
struct ModelMessage {
    queue: usize,
    visible_at: u64,
    lease: Option<i64>,
    attempt: u32,
    fate: Fate,
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
                self.insert(dlq, self.now);
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

async fn store_snapshot(store: &Store) -> Snapshot {
    let mut snapshot = Vec::new();
    for q in QUEUES {
        let info = store.get_queue(q).await.expect("get queue");
        let s = info.stats;
        let ids: BTreeSet<i64> = store
            .read(move |conn, _| {
                let mut stmt = conn.prepare("SELECT id FROM messages WHERE queue = ?1")?;
                let ids = stmt
                    .query_map([q], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(ids)
            })
            .await
            .expect("ids");
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

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = TempDir::new().expect("temp dir");
    let clock = Arc::new(ManualClock::new(T0));
    let store =
        Store::open_with_clock(dir.path(), StoreOptions::default(), clock.clone()).expect("open");
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
    let mut model = Model {
        now: T0,
        next_id: 1,
        messages: BTreeMap::new(),
        totals: Default::default(),
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
                let before = store_snapshot(&store).await;
                let got = store.settle(&lease, settlement.clone()).await;
                if target == Some("missing") {
                    prop_assert!(matches!(got, Err(Error::QueueNotFound(_))), "{:?}", got);
                    prop_assert_eq!(
                        store_snapshot(&store).await,
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
                        want.stale += 1;
                    }
                }
                for r in &settlement.retry {
                    let id: i64 = r.id.parse().expect("id");
                    if !model.held(id, lease.id) {
                        want.stale += 1;
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
                        want.stale += 1;
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
        }
        prop_assert_eq!(store_snapshot(&store).await, model_snapshot(&model));
    }
    // Every message ever enqueued is in exactly one state, and the ids were all accounted for.
    prop_assert_eq!(model.messages.len() as i64, model.next_id - 1);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model(ops in prop::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(run(ops))?;
    }
}
