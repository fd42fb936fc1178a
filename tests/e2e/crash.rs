//! Crash safety under load: producers enqueue over HTTP while a trigger forwards every message
//! to an output queue (the send commits atomically with the ack), and the host is killed with
//! SIGKILL again and again, or stopped with SIGTERM. At the end every acknowledged enqueue was
//! handled exactly once, and every poison message among them dead-lettered; only batches in
//! flight at a kill were delivered again. The kill timing comes from a seeded RNG whose seed is
//! printed; `SLUICE_CRASH_SEED=N` replays it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::durability::all_messages;
use crate::support::{Server, guest, wait_for};

/// Where producers send now: the current server's address and client, `None` while it is down.
type Target = Arc<RwLock<Option<(String, reqwest::Client)>>>;

fn aim(target: &Target, server: Option<&Server>) {
    *target.write().unwrap() = server.map(|s| (s.url.clone(), s.http.clone()));
}

/// Concurrent producers: half send single messages, half batches of 10, each message asking the
/// `ok` guest to forward it to `out`; the last message of every batch is poison (attribute
/// `fail`), which the guest dead-letters after forwarding it. They keep going across restarts;
/// an id is recorded only when its enqueue was answered 2xx.
struct Producers {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
    poison: Arc<Mutex<Vec<String>>>,
    failed: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<()>>,
}

impl Producers {
    fn start(target: &Target, queue: &str, out: &str, clients: usize) -> Producers {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let poison = Arc::new(Mutex::new(Vec::new()));
        let failed = Arc::new(AtomicU64::new(0));
        let tasks = (0..clients)
            .map(|client| {
                let (target, stop, acked, poison, failed) = (
                    target.clone(),
                    stop.clone(),
                    acked.clone(),
                    poison.clone(),
                    failed.clone(),
                );
                let (queue, out) = (queue.to_owned(), out.to_owned());
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let current = target.read().unwrap().clone();
                        let Some((url, http)) = current else {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        };
                        n += 1;
                        let request = if client % 2 == 0 {
                            http.post(format!("{url}/v1/queues/{queue}/messages"))
                                .header("sluice-attr-to", &out)
                                .body(format!("c{client}-{n}"))
                        } else {
                            let messages: Vec<_> = (0..10)
                                .map(|i| {
                                    let body = format!("c{client}-{n}-{i}");
                                    if i == 9 {
                                        json!({"body": body, "attributes": {"to": out, "fail": "poison"}})
                                    } else {
                                        json!({"body": body, "attributes": {"to": out}})
                                    }
                                })
                                .collect();
                            http.post(format!("{url}/v1/queues/{queue}/messages/batch"))
                                .json(&json!({ "messages": messages }))
                        };
                        let answer = match request.timeout(Duration::from_secs(10)).send().await {
                            Ok(r) if r.status().is_success() => r.json::<Value>().await.ok(),
                            _ => None,
                        };
                        let Some(answer) = answer else {
                            failed.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        };
                        let mut acked = acked.lock().await;
                        if let Some(id) = answer["id"].as_str() {
                            acked.push(id.to_owned());
                        } else if let Some(ids) = answer["ids"].as_array() {
                            acked.extend(ids.iter().map(|id| id.as_str().unwrap().to_owned()));
                            let last = ids.last().and_then(|id| id.as_str()).unwrap();
                            poison.lock().await.push(last.to_owned());
                        }
                        drop(acked);
                        // Pace the load so the trigger can keep up on a shared 2-core machine.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                })
            })
            .collect();
        Producers {
            stop,
            acked,
            poison,
            failed,
            tasks,
        }
    }

    async fn acked_count(&self) -> usize {
        self.acked.lock().await.len()
    }

    /// Stops the producers and returns every acknowledged id, the poison ones among them, and
    /// how many requests failed.
    async fn finish(self) -> (Vec<String>, HashSet<String>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        let acked = self.acked.lock().await.clone();
        let poison = self.poison.lock().await.iter().cloned().collect();
        (acked, poison, self.failed.load(Ordering::Relaxed))
    }
}

/// Queues `in` (with dead-letter queue `in-dlq`) and `out`, and the `ok` guest forwarding `in`
/// to `out`. The dispatcher leases for max(visibility, timeout + 2 s) = 3 s, so batches
/// abandoned by a kill come back quickly.
async fn deploy(server: &Server, visibility_timeout_ms: u64) {
    server.create_queue(json!({"name": "in-dlq"})).await;
    server.create_queue(json!({"name": "out"})).await;
    server
        .create_queue(json!({
            "name": "in",
            "visibility_timeout_ms": visibility_timeout_ms,
            "max_attempts": 10,
            "backoff": {"initial_ms": 20, "max_ms": 200},
            "dead_letter_queue": "in-dlq"
        }))
        .await;
    server
        .deploy("forward", guest("ok"), "timeout_ms=1000")
        .await;
    server
        .trigger(
            "forward",
            json!({"queue": "in", "batch_size": 20, "max_concurrency": 2}),
        )
        .await;
}

async fn drained(server: &Server, queue: &str, deadline: Duration) -> bool {
    wait_for(deadline, || async {
        let s = server.stats(queue).await;
        s["visible"] == 0 && s["delayed"] == 0 && s["in_flight"] == 0
    })
    .await
}

/// What the output queues say about the inputs.
struct Outcome {
    /// Input id → delivery attempt of each forwarded copy.
    forwarded: HashMap<String, Vec<u64>>,
    /// Input ids of the dead-lettered copies (a copy has an id of its own and names its source
    /// in `sluice-source-id`).
    dead_lettered: HashSet<String>,
}

impl Outcome {
    async fn collect(server: &Server) -> Outcome {
        let mut forwarded: HashMap<String, Vec<u64>> = HashMap::new();
        for message in all_messages(server, "out").await {
            let attrs = &message["attributes"];
            let from = attrs["from"]
                .as_str()
                .unwrap_or_else(|| panic!("{message}"));
            let attempt: u64 = attrs["attempt"].as_str().unwrap().parse().unwrap();
            forwarded.entry(from.to_owned()).or_default().push(attempt);
        }
        let mut dead_lettered = HashSet::new();
        for message in all_messages(server, "in-dlq").await {
            let source = message["attributes"]["sluice-source-id"]
                .as_str()
                .unwrap_or_else(|| panic!("dead-lettered without its source id: {message}"));
            assert_ne!(message["id"].as_str(), Some(source), "{message}");
            assert!(
                dead_lettered.insert(source.to_owned()),
                "{source} dead-lettered twice"
            );
        }
        Outcome {
            forwarded,
            dead_lettered,
        }
    }

    /// Forwarded copies beyond the first of each input: sends committed twice.
    fn duplicates(&self) -> usize {
        self.forwarded.values().map(|a| a.len() - 1).sum()
    }

    /// Inputs whose forwarded copy came from a second or later delivery.
    fn redelivered(&self) -> usize {
        self.forwarded
            .values()
            .filter(|a| a.iter().any(|&n| n > 1))
            .count()
    }

    /// Acknowledged enqueues that were not handled, or poison ones that were not dead-lettered
    /// (the guest forwards a poison message and dead-letters it in the same settlement).
    fn lost<'a>(&self, acked: &'a [String], poison: &HashSet<String>) -> Vec<&'a String> {
        acked
            .iter()
            .filter(|id| {
                !self.forwarded.contains_key(*id)
                    || (poison.contains(*id) != self.dead_lettered.contains(*id))
            })
            .collect()
    }
}

const KILLS: usize = 20;
const BATCH_SIZE: usize = 20;
const CONCURRENCY: usize = 2;

#[tokio::test]
async fn twenty_sigkills_under_load_lose_nothing_and_duplicate_no_send() {
    let (server, dir) = Server::start().await;
    deploy(&server, 1000).await;
    let target: Target = Arc::new(RwLock::new(None));
    aim(&target, Some(&server));
    let producers = Producers::start(&target, "in", "out", 4);
    let mut server = Some(server);
    let seed = match std::env::var("SLUICE_CRASH_SEED") {
        Ok(seed) => seed
            .parse()
            .expect("SLUICE_CRASH_SEED must be a whole number"),
        Err(_) => rand::random(),
    };
    println!("crash safety: kill timing seed {seed} (replay with SLUICE_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);

    for kill in 0..KILLS {
        let mut running = server.take().unwrap();
        // Let the load run a random while (and at least until the first enqueue lands), then
        // kill: mid-enqueue, mid-batch, mid-settle, wherever it falls.
        let before = producers.acked_count().await;
        let progressed = wait_for(Duration::from_secs(30), || async {
            producers.acked_count().await > before
        })
        .await;
        assert!(
            progressed,
            "no enqueue succeeded before kill {kill} (SLUICE_CRASH_SEED={seed})"
        );
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..1200))).await;
        aim(&target, None);
        running.kill9();
        drop(running);
        server = Some(Server::start_in(dir.path()).await);
        aim(&target, server.as_ref());
    }
    let server = server.unwrap();
    // One more stretch of load against the last server, then stop producing.
    let before = producers.acked_count().await;
    let resumed = wait_for(Duration::from_secs(10), || async {
        producers.acked_count().await > before + 100
    })
    .await;
    assert!(
        resumed,
        "the last server did not take 100 more enqueues within 10 s (SLUICE_CRASH_SEED={seed})"
    );
    aim(&target, None);
    let (acked, poison, failed_requests) = producers.finish().await;

    assert!(
        drained(&server, "in", Duration::from_secs(120)).await,
        "the trigger did not drain `in` (SLUICE_CRASH_SEED={seed}): {}",
        server.stats("in").await
    );
    let stats = server.stats("in").await;
    let outcome = Outcome::collect(&server).await;
    let lost = outcome.lost(&acked, &poison);
    let handled = outcome.forwarded.len();
    let redelivered = outcome.redelivered();
    let duplicates = outcome.duplicates();
    let acked_set: HashSet<&String> = acked.iter().collect();
    println!(
        "crash safety: kills={KILLS} acked_enqueues={} failed_requests={failed_requests} handled={handled} \
         (of which not acknowledged to the producer: {}) redelivered={redelivered} retried_by_store={} \
         dead_lettered={} (poison acknowledged: {}) duplicates={duplicates} lost={} seed={seed}",
        acked.len(),
        outcome
            .forwarded
            .keys()
            .filter(|id| !acked_set.contains(id))
            .count(),
        stats["retried_total"],
        outcome.dead_lettered.len(),
        poison.len(),
        lost.len()
    );
    assert!(acked.len() > 1_000, "the load was too light to prove much");
    assert!(!poison.is_empty(), "no poison message was acknowledged");
    assert!(
        lost.is_empty(),
        "{} acknowledged enqueues were not handled, or not dead-lettered though poison, e.g. {:?} \
         (SLUICE_CRASH_SEED={seed})",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert_eq!(
        duplicates, 0,
        "a send committed twice: a batch was handled after its ack committed (SLUICE_CRASH_SEED={seed})"
    );
    // Only batches in flight at a kill come back (each kill abandons at most `CONCURRENCY`
    // batches), plus any the store retried itself (a time limit hit on a loaded machine).
    let bound =
        KILLS * CONCURRENCY * BATCH_SIZE + stats["retried_total"].as_u64().unwrap() as usize;
    assert!(
        redelivered <= bound,
        "{redelivered} messages redelivered, more than the {bound} that could have been in flight at the kills \
         (SLUICE_CRASH_SEED={seed})"
    );
}

#[tokio::test]
async fn sigterm_under_load_then_restart_handles_everything_without_waiting_for_leases() {
    // Leases last a minute: a batch abandoned in flight would sit there far longer than the
    // deadlines below.
    const VISIBILITY_MS: u64 = 60_000;
    let (mut server, dir) = Server::start().await;
    deploy(&server, VISIBILITY_MS).await;
    let target: Target = Arc::new(RwLock::new(None));
    aim(&target, Some(&server));
    let producers = Producers::start(&target, "in", "out", 4);
    let loaded = wait_for(Duration::from_secs(60), || async {
        producers.acked_count().await >= 2_000 && server.stats("out").await["visible"] != 0
    })
    .await;
    assert!(loaded, "producers and trigger made no progress");

    // The producers keep sending while the host shuts down.
    let status = server.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    aim(&target, None);
    let server = Server::start_in(dir.path()).await;
    aim(&target, Some(&server));
    let before = producers.acked_count().await;
    let resumed = wait_for(Duration::from_secs(10), || async {
        producers.acked_count().await > before + 200
    })
    .await;
    assert!(
        resumed,
        "the restarted server did not take 200 more enqueues within 10 s"
    );
    aim(&target, None);
    let (acked, poison, failed_requests) = producers.finish().await;

    assert!(
        drained(&server, "in", Duration::from_secs(40)).await,
        "messages still in `in` after restart (stuck in flight?): {}",
        server.stats("in").await
    );
    let stats = server.stats("in").await;
    let outcome = Outcome::collect(&server).await;
    let lost = outcome.lost(&acked, &poison);
    println!(
        "sigterm under load: acked_enqueues={} failed_requests={failed_requests} handled={} redelivered={} \
         retried={} dead_lettered={} duplicates={} lost={}",
        acked.len(),
        outcome.forwarded.len(),
        outcome.redelivered(),
        stats["retried_total"],
        outcome.dead_lettered.len(),
        outcome.duplicates(),
        lost.len()
    );
    assert!(lost.is_empty(), "lost {} acknowledged enqueues", lost.len());
    assert_eq!(outcome.duplicates(), 0);
    // SIGTERM let every in-flight batch settle: nothing is delivered twice unless the store
    // retried it (a time limit hit on a loaded machine).
    assert!(
        outcome.redelivered() as u64 <= stats["retried_total"].as_u64().unwrap(),
        "batches were abandoned at shutdown and delivered again"
    );
    assert!(!poison.is_empty(), "no poison message was acknowledged");
    // Only the poison messages were dead-lettered (each once, checked by `collect`): a poison
    // message whose enqueue was not answered may be among them too.
    let acked_set: HashSet<&String> = acked.iter().collect();
    let unexpected: Vec<&String> = outcome
        .dead_lettered
        .iter()
        .filter(|id| acked_set.contains(id) && !poison.contains(*id))
        .collect();
    assert!(
        unexpected.is_empty(),
        "dead-lettered though not poison: {unexpected:?}"
    );
}
