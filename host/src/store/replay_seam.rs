//! Property test of a topic's replay seam, on both backends: random publishes (single
//! messages and batches crossing the catch-up chunk), subscriptions from `earliest`, `latest`
//! or a time, made at random points, and catch-up chunks and clock advances interleaved with
//! them. The rule: once every subscription has caught up, each queue holds exactly the topic's
//! messages its starting point names, each once and in publish order, whichever of the publish
//! and the catch-up copied it; a subscription that has caught up never lags again.
//!
//! 16 cases by default (SQLite; 4 on PostgreSQL), four times as many in CI;
//! `PROPTEST_CASES=N` sets the number.

use std::sync::Arc;

use proptest::prelude::*;
use tempfile::TempDir;

use super::proptests::cases;
use super::topics::CATCH_UP_CHUNK;
use super::*;

const T0: u64 = 1_000_000;
const QUEUES: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone)]
enum Op {
    Publish(usize),
    /// Subscribe queue `queue` (if it is not yet): 0 earliest, 1 latest, 2 from now.
    Subscribe {
        queue: usize,
        from: u8,
    },
    CatchUp(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop_oneof![1..4usize, Just(CATCH_UP_CHUNK as usize + 1), 100..300usize]
            .prop_map(Op::Publish),
        2 => (0..QUEUES.len(), 0..3u8).prop_map(|(queue, from)| Op::Subscribe { queue, from }),
        3 => (0..QUEUES.len()).prop_map(Op::CatchUp),
        1 => (1..1_000u64).prop_map(Op::Advance),
    ]
}

/// The `sluice-topic-seq` of every message of `queue`, in queue order.
async fn seqs(store: &Store, queue: &str) -> Vec<u64> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .peek(queue, 1_000, after.as_deref())
            .await
            .expect("peek");
        let Some(last) = page.last() else {
            return all;
        };
        after = Some(last.id.clone());
        all.extend(page.iter().map(|m| {
            m.attributes
                .iter()
                .find(|(k, _)| k == "sluice-topic-seq")
                .and_then(|(_, v)| v.parse::<u64>().ok())
                .expect("a copy carries its topic sequence")
        }));
    }
}

async fn run(ops: Vec<Op>, postgres: bool) -> Result<(), TestCaseError> {
    let dir = TempDir::new().expect("temp dir");
    let clock = Arc::new(ManualClock::new(T0));
    let (store, _db) = if postgres {
        let db = sluice_test_support::testdb::TestDatabase::create().await;
        let store = Store::connect_postgres(&db.url, StoreOptions::default(), clock.clone())
            .await
            .expect("connect");
        (store, Some(db))
    } else {
        let store = Store::open_with_clock(dir.path(), StoreOptions::default(), clock.clone())
            .expect("open");
        (store, None)
    };
    store.create_topic("t", 86_400_000).await.expect("topic");
    for queue in QUEUES {
        store
            .create_queue(queue, QueueSettings::default())
            .await
            .expect("queue");
    }

    // Publish times by sequence (index seq - 1), and each subscription's first sequence.
    let mut published_at: Vec<u64> = Vec::new();
    let mut first: [Option<u64>; QUEUES.len()] = [None; QUEUES.len()];
    for op in ops {
        match op {
            Op::Publish(n) => {
                let messages = (0..n).map(|_| NewMessage::default()).collect();
                let out = store.publish("t", messages).await.expect("publish");
                prop_assert_eq!(out.len(), n);
                for p in out {
                    prop_assert_eq!(p.seq, published_at.len() as u64 + 1);
                    published_at.push(clock.now_ms());
                }
            }
            Op::Subscribe { queue, from } => {
                if first[queue].is_some() {
                    continue;
                }
                let head = published_at.len() as u64;
                let (replay, starts_at) = match from {
                    0 => (ReplayFrom::Earliest, 1),
                    1 => (ReplayFrom::Latest, head + 1),
                    _ => {
                        let now = clock.now_ms();
                        let at = published_at.iter().position(|&t| t >= now);
                        (ReplayFrom::Time(now), at.map_or(head + 1, |i| i as u64 + 1))
                    }
                };
                store
                    .subscribe("t", QUEUES[queue], serde_json::json!({}), replay)
                    .await
                    .expect("subscribe");
                first[queue] = Some(starts_at);
            }
            Op::CatchUp(queue) => {
                if first[queue].is_some() {
                    store.catch_up("t", QUEUES[queue]).await.expect("catch up");
                }
            }
            Op::Advance(ms) => clock.advance(ms),
        }
    }

    let head = published_at.len() as u64;
    for (queue, starts_at) in QUEUES.iter().zip(first) {
        let Some(starts_at) = starts_at else { continue };
        let mut chunks = 0;
        while !store.catch_up("t", queue).await.expect("catch up") {
            chunks += 1;
            prop_assert!(
                chunks <= head / CATCH_UP_CHUNK + 2,
                "catch-up makes no progress"
            );
        }
        let want: Vec<u64> = (starts_at..=head).collect();
        prop_assert_eq!(seqs(&store, queue).await, want, "queue {}", queue);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(16), ..ProptestConfig::default() })]

    #[test]
    fn sqlite_replays_meet_live_publishing_at_a_clean_seam(ops in prop::collection::vec(op(), 1..30)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(run(ops, false))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(4), ..ProptestConfig::default() })]

    #[test]
    fn postgres_replays_meet_live_publishing_at_a_clean_seam(ops in prop::collection::vec(op(), 1..30)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        runtime.block_on(run(ops, true))?;
    }
}
