//! Property test of ordered groups, on both backends: random enqueues (into three groups or
//! none, at random priorities), leases, settles (ack, retry, dead-letter, or nothing), deletes
//! and clock advances. The rule checked at every lease: a delivered message is the oldest
//! message of its group still in the queue, so a group's messages go out one at a time, in
//! enqueue order, and a message that failed holds its group until it is acked, retried through
//! or dead-lettered. At the end every message must still come out: no group is left waiting.
//!
//! 24 cases by default (SQLite; 8 on PostgreSQL), four times as many in CI;
//! `PROPTEST_CASES=N` sets the number.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use tempfile::TempDir;

use super::proptests::cases;
use super::*;

const T0: u64 = 1_000_000;
const VISIBILITY_MS: u64 = 1_000;
const GROUPS: [&str; 3] = ["red", "green", "blue"];

#[derive(Debug, Clone)]
enum Op {
    /// `n` messages at `priority`, into group `group` (3: no group).
    Enqueue {
        group: usize,
        n: usize,
        priority: u8,
    },
    Lease {
        max: usize,
    },
    /// Settle one of the leases taken so far: per message 0 ack, 1 retry now, 2 dead-letter,
    /// 3 leave alone (the lease expires).
    Settle {
        lease: usize,
        actions: Vec<u8>,
    },
    /// Delete the message at this position of the queue, in flight or not.
    Delete(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..4usize, 1..4usize, 0..10u8)
            .prop_map(|(group, n, priority)| Op::Enqueue { group, n, priority }),
        3 => (1..6usize).prop_map(|max| Op::Lease { max }),
        3 => (any::<usize>(), prop::collection::vec(0..4u8, 6))
            .prop_map(|(lease, actions)| Op::Settle { lease, actions }),
        1 => any::<usize>().prop_map(Op::Delete),
        1 => prop_oneof![Just(0u64), Just(VISIBILITY_MS + 1)].prop_map(Op::Advance),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Sqlite,
    Postgres,
}

/// The queue's messages by id (ids of one queue grow with enqueue order), with their groups.
async fn in_queue(store: &Store) -> BTreeMap<u64, Option<String>> {
    store
        .peek("q", 1_000, None)
        .await
        .expect("peek")
        .into_iter()
        .map(|m| (m.id.parse().expect("numeric id"), m.group))
        .collect()
}

/// Fails unless every delivered message is the oldest of its group in `queue` (read after the
/// lease, which may have dead-lettered older ones out of attempts).
fn check_oldest(lease: &Lease, queue: &BTreeMap<u64, Option<String>>) -> Result<(), TestCaseError> {
    for m in &lease.messages {
        let Some(group) = &m.group else { continue };
        let id: u64 = m.id.parse().expect("numeric id");
        let older = queue
            .range(..id)
            .find(|(_, g)| g.as_deref() == Some(group.as_str()));
        prop_assert!(
            older.is_none(),
            "message {} of group {} was delivered while {:?} is still queued before it",
            id,
            group,
            older
        );
    }
    let mut groups: Vec<&str> = lease
        .messages
        .iter()
        .filter_map(|m| m.group.as_deref())
        .collect();
    let all = groups.len();
    groups.sort_unstable();
    groups.dedup();
    prop_assert_eq!(groups.len(), all, "one lease took two messages of a group");
    Ok(())
}

async fn run(ops: Vec<Op>, kind: Kind) -> Result<(), TestCaseError> {
    let dir = TempDir::new().expect("temp dir");
    let clock = Arc::new(ManualClock::new(T0));
    let (store, _db) = match kind {
        Kind::Sqlite => {
            let store = Store::open_with_clock(dir.path(), StoreOptions::default(), clock.clone())
                .expect("open");
            (store, None)
        }
        Kind::Postgres => {
            let db = sluice_test_support::testdb::TestDatabase::create().await;
            let store = Store::connect_postgres(&db.url, StoreOptions::default(), clock.clone())
                .await
                .expect("connect");
            (store, Some(db))
        }
    };
    store
        .create_queue("dead", QueueSettings::default())
        .await
        .expect("dlq");
    let settings = QueueSettings {
        max_attempts: 3,
        visibility_timeout_ms: VISIBILITY_MS,
        dead_letter_queue: Some("dead".into()),
        ..Default::default()
    };
    store.create_queue("q", settings).await.expect("queue");

    let mut leases: Vec<Lease> = Vec::new();
    let mut enqueued = 0u64;
    for op in ops {
        match op {
            Op::Enqueue { group, n, priority } => {
                let messages = (0..n)
                    .map(|i| NewMessage {
                        body: vec![i as u8],
                        priority,
                        group: GROUPS.get(group).map(|g| g.to_string()),
                        ..NewMessage::default()
                    })
                    .collect();
                store.enqueue("q", messages).await.expect("enqueue");
                enqueued += n as u64;
            }
            Op::Lease { max } => {
                if let Some(lease) = store.lease("q", max, None).await.expect("lease") {
                    check_oldest(&lease, &in_queue(&store).await)?;
                    leases.push(lease);
                }
            }
            Op::Settle { lease, actions } => {
                if leases.is_empty() {
                    continue;
                }
                let lease = &leases[lease % leases.len()];
                let mut settlement = Settlement::default();
                for (m, action) in lease.messages.iter().zip(actions) {
                    let id = m.id.clone();
                    match action {
                        0 => settlement.ack.push(id),
                        1 => settlement.retry.push(Retry {
                            id,
                            delay_ms: 0,
                            error: "retry".into(),
                        }),
                        2 => settlement.dead_letter.push(DeadLetter {
                            id,
                            reason: "bad".into(),
                        }),
                        _ => {}
                    }
                }
                store.settle(lease, settlement).await.expect("settle");
            }
            Op::Delete(at) => {
                let queue = in_queue(&store).await;
                if let Some(id) = queue.keys().nth(at % queue.len().max(1)) {
                    store
                        .delete_messages("q", vec![id.to_string()])
                        .await
                        .expect("delete");
                }
            }
            Op::Advance(ms) => clock.advance(ms),
        }
    }

    // Every message still queued comes out, each group in order, however the steps left it.
    clock.advance(VISIBILITY_MS + 1);
    for _ in 0..=enqueued {
        let Some(lease) = store.lease("q", 10, None).await.expect("lease") else {
            break;
        };
        check_oldest(&lease, &in_queue(&store).await)?;
        let settlement = Settlement {
            ack: lease.messages.iter().map(|m| m.id.clone()).collect(),
            ..Settlement::default()
        };
        store.settle(&lease, settlement).await.expect("settle");
    }
    let left = in_queue(&store).await;
    prop_assert!(left.is_empty(), "messages never delivered: {:?}", left);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(24), ..ProptestConfig::default() })]

    #[test]
    fn sqlite_groups_deliver_in_order(ops in prop::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(run(ops, Kind::Sqlite))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(8), ..ProptestConfig::default() })]

    #[test]
    fn postgres_groups_deliver_in_order(ops in prop::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        runtime.block_on(run(ops, Kind::Postgres))?;
    }
}
