//! Key-value state through the real binary: buckets and keys over the HTTP API (an operator's
//! write commits at once; `read` tokens read, only `admin`/`deploy` change), a function's
//! version keeping the buckets it may open, and `examples/counter` keeping exact counts while
//! the host is SIGKILLed mid-run: state commits with the ack, so a batch abandoned by a kill
//! is redelivered with none of its writes kept.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::hosts::{Cluster, held};
use crate::support::{
    Server, assert_error, cli, client_with, example, examples_dir, guest, wait_for,
};

/// Buckets are created, changed and listed; keys are written, read with their version, listed
/// by prefix a page at a time, and deleted; deleting the bucket takes its keys along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_and_keys_over_the_api() {
    let (server, _dir) = Server::start().await;
    let (status, bucket) = server
        .put_json("/v1/kv/seen", json!({"ttl_ms": 3_600_000}))
        .await;
    assert_eq!(
        (status, bucket["ttl_ms"].as_u64()),
        (200, Some(3_600_000)),
        "{bucket}"
    );
    let (status, _) = server.put_json("/v1/kv/counts", json!({})).await;
    assert_eq!(status, 200);
    let (status, list) = server.get("/v1/kv").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = (list["buckets"].as_array().unwrap().iter())
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["counts", "seen"]);

    let http = client_with(Some(crate::support::ADMIN_TOKEN));
    for (key, value) in [("count:a", "1"), ("count:b", "22"), ("other", "x")] {
        let answer = http
            .put(server.url(&format!("/v1/kv/counts/keys/{key}")))
            .body(value)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 204);
    }
    let answer = http
        .get(server.url("/v1/kv/counts/keys/count:b"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let version: u64 = answer.headers()["sluice-kv-version"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(version > 0);
    assert_eq!(answer.bytes().await.unwrap().as_ref(), b"22");

    let (status, page) = server.get("/v1/kv/counts/keys?prefix=count:&limit=1").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["keys"], json!(["count:a"]));
    let cursor = page["cursor"].as_str().unwrap().to_owned();
    let (_, page) = server
        .get(&format!("/v1/kv/counts/keys?prefix=count:&cursor={cursor}"))
        .await;
    assert_eq!(
        (page["keys"].clone(), page["cursor"].clone()),
        (json!(["count:b"]), json!(null))
    );

    let (status, _) = server.delete("/v1/kv/counts/keys/count:a").await;
    assert_eq!(status, 204);
    let (status, body) = server.get("/v1/kv/counts/keys/count:a").await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = server.get("/v1/kv/nope/keys/k").await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = server.put_json("/v1/kv/bad name", json!({})).await;
    assert_error(status, &body, 400, "bad_request");

    let (status, _) = server.delete("/v1/kv/counts").await;
    assert_eq!(status, 204);
    let (status, body) = server.get("/v1/kv/counts/keys").await;
    assert_error(status, &body, 404, "not_found");
}

/// `read` lists and reads; changing buckets or keys takes `admin` or `deploy`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_needs_read_and_changing_needs_deploy() {
    let (server, _dir) = Server::start().await;
    server.put_json("/v1/kv/b", json!({})).await;
    let mut tokens = Vec::new();
    for scope in ["read", "deploy"] {
        let (status, created) = server
            .post("/v1/tokens", json!({"name": scope, "scopes": [scope]}))
            .await;
        assert_eq!(status, 201, "{created}");
        tokens.push(client_with(created["token"].as_str()));
    }
    let (reader, deployer) = (&tokens[0], &tokens[1]);
    let put = |client: &reqwest::Client| client.put(server.url("/v1/kv/b/keys/k")).body("v").send();
    assert_eq!(put(reader).await.unwrap().status(), 403);
    assert_eq!(put(deployer).await.unwrap().status(), 204);
    let read = reader
        .get(server.url("/v1/kv/b/keys/k"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let listed = reader.get(server.url("/v1/kv")).send().await.unwrap();
    assert_eq!(listed.status(), 200);
    let deleted = reader.delete(server.url("/v1/kv/b")).send().await.unwrap();
    assert_eq!(deleted.status(), 403);
}

/// The buckets a function may open are kept with its version (`kv_bucket` may repeat).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_keeps_the_buckets_it_may_open() {
    let (server, _dir) = Server::start().await;
    let (status, function) = server
        .put_wasm(
            "/v1/functions/f?kv_bucket=counts&kv_bucket=seen",
            example("sum"),
        )
        .await;
    assert_eq!(status, 201, "{function}");
    assert_eq!(
        function["versions"][0]["config"]["kv_buckets"],
        json!(["counts", "seen"])
    );
    let (status, body) = server
        .put_wasm("/v1/functions/g?kv_bucket=no%20spaces", example("sum"))
        .await;
    assert_error(status, &body, 400, "bad_request");
}

/// Customers the counter's messages are spread over.
const CUSTOMERS: usize = 100;

/// Creates the buckets `counts` and `seen` (keys expire an hour after their write) and the
/// queue `visits`, whose abandoned leases come back after a second.
async fn prepare_counter(server: &Server) {
    let (status, body) = server.put_json("/v1/kv/counts", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server
        .put_json("/v1/kv/seen", json!({"ttl_ms": 3_600_000}))
        .await;
    assert_eq!(status, 200, "{body}");
    server
        .create_queue(json!({
            "name": "visits",
            "visibility_timeout_ms": 1000,
            "max_attempts": 1000,
            "backoff": {"initial_ms": 20, "max_ms": 200},
        }))
        .await;
}

/// Enqueues `n` messages to `visits`, message `i` for customer `c<i % 100>`; returns their ids
/// and how many each customer got.
async fn enqueue_visits(server: &Server, n: usize) -> (Vec<String>, BTreeMap<String, u64>) {
    let mut sent = BTreeMap::new();
    let bodies: Vec<Value> = (0..n)
        .map(|i| {
            let customer = format!("c{}", i % CUSTOMERS);
            *sent.entry(customer.clone()).or_insert(0) += 1;
            json!({"body": format!("visit {i}"), "attributes": {"customer": customer}})
        })
        .collect();
    (server.enqueue_all("visits", bodies).await, sent)
}

/// Deploys `examples/counter` with the CLI, granted both buckets, consuming `visits`. The time
/// limit of 1 s makes the dispatcher lease for 3 s, so batches a kill abandons return soon.
fn deploy_counter(server: &Server) {
    let wasm = examples_dir().join("counter.wasm");
    cli(
        server,
        &[
            "deploy",
            wasm.to_str().unwrap(),
            "--name",
            "counter",
            "--kv",
            "counts",
            "--kv",
            "seen",
            "--timeout",
            "1s",
            "--queue",
            "visits",
            "--batch-size",
            "50",
            "--concurrency",
            "2",
        ],
    );
}

/// Messages of `queue` not yet settled for good.
async fn remaining(server: &Server, queue: &str) -> u64 {
    let stats = server.stats(queue).await;
    ["visible", "delayed", "in_flight"]
        .iter()
        .map(|k| stats[k].as_u64().unwrap())
        .sum()
}

/// Checks what the counter committed against what was sent: every `count:<customer>` equals
/// the messages sent for that customer, and `seen` holds exactly the ids sent.
async fn assert_counted(server: &Server, ids: &[String], sent: &BTreeMap<String, u64>) {
    for (customer, expected) in sent {
        let answer = server
            .http
            .get(server.url(&format!("/v1/kv/counts/keys/count:{customer}")))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "count:{customer}");
        let count: u64 = answer.text().await.unwrap().parse().unwrap();
        assert_eq!(count, *expected, "count:{customer}");
    }
    let mut seen = HashSet::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = server
            .get(&format!(
                "/v1/kv/seen/keys?prefix=seen:&limit=1000&cursor={cursor}"
            ))
            .await;
        assert_eq!(status, 200, "{page}");
        for key in page["keys"].as_array().unwrap() {
            let id = key.as_str().unwrap().strip_prefix("seen:").unwrap();
            assert!(seen.insert(id.to_owned()), "{id} listed twice");
        }
        match page["cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    let ids: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(seen.len(), ids.len());
    assert!(seen == ids, "`seen` holds other ids than those sent");
}

/// 20,000 messages over 100 customers through `examples/counter`, the host SIGKILLed three
/// times mid-run (each time with batches in flight, whose writes the kill discards) and
/// restarted on its data: every count is exactly the number of messages sent for its customer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_stay_exact_through_sigkills_of_the_host() {
    const MESSAGES: usize = 20_000;
    const KILLS: usize = 3;
    let (mut server, dir) = Server::start().await;
    prepare_counter(&server).await;
    let (ids, sent) = enqueue_visits(&server, MESSAGES).await;
    deploy_counter(&server);

    let mut in_flight_at_kills = Vec::new();
    for kill in 1..=KILLS {
        // Kill once the drain is past the next quarter, while a batch is leased.
        let below = (MESSAGES * (KILLS + 1 - kill) / (KILLS + 1)) as u64;
        let in_flight = std::cell::Cell::new(0);
        let reached = wait_for(Duration::from_secs(60), || async {
            let stats = server.stats("visits").await;
            in_flight.set(stats["in_flight"].as_u64().unwrap());
            stats["visible"].as_u64().unwrap() <= below && in_flight.get() > 0
        })
        .await;
        assert!(
            reached,
            "kill {kill}: the drain did not get below {below} messages with a batch in flight: {}",
            server.stats("visits").await
        );
        server.kill9();
        drop(server);
        in_flight_at_kills.push(in_flight.get());
        server = Server::start_in(dir.path()).await;
    }

    let drained = wait_for(Duration::from_secs(60), || async {
        remaining(&server, "visits").await == 0
    })
    .await;
    let stats = server.stats("visits").await;
    assert!(drained, "`visits` did not drain after the kills: {stats}");
    assert_counted(&server, &ids, &sent).await;
    assert_eq!(stats["dead_lettered_total"], 0, "{stats}");
    println!(
        "state under kills (SQLite): {MESSAGES} messages over {} customers, {KILLS} SIGKILLs with \
         {in_flight_at_kills:?} messages leased (an earlier kill's until its leases expire), \
         every count exact ({} per customer)",
        sent.len(),
        MESSAGES / CUSTOMERS
    );
}

/// The same count over three hosts sharing one PostgreSQL database, one of them SIGKILLed while
/// it holds leases: the survivors take its batches over once the leases expire (with none of
/// the dead host's writes), and every count, read through the host that was never killed, is
/// still exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_stay_exact_over_three_hosts_on_postgres_with_one_sigkilled() {
    const MESSAGES: usize = 20_000;
    let mut cluster = Cluster::start(3).await;
    prepare_counter(&cluster.hosts[0]).await;
    let (ids, sent) = enqueue_visits(&cluster.hosts[0], MESSAGES).await;
    deploy_counter(&cluster.hosts[1]);

    // Killed while it holds leases (whichever of hosts 2 and 3 is seen holding one first),
    // once a quarter of the messages are counted.
    let victim = std::cell::Cell::new(None);
    let holding = wait_for(Duration::from_secs(60), || async {
        if remaining(&cluster.hosts[0], "visits").await > (MESSAGES * 3 / 4) as u64 {
            return false;
        }
        for i in [2, 1] {
            if held(&cluster.hosts[i]).await > 0.0 {
                victim.set(Some(i));
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        holding,
        "neither host 2 nor host 3 held a lease: {}",
        cluster.hosts[0].stats("visits").await
    );
    let victim = victim.get().unwrap();
    let left_at_kill = remaining(&cluster.hosts[0], "visits").await;
    cluster.hosts[victim].kill9();

    let drained = wait_for(Duration::from_secs(120), || async {
        remaining(&cluster.hosts[0], "visits").await == 0
    })
    .await;
    let stats = cluster.hosts[0].stats("visits").await;
    assert!(
        drained,
        "the surviving hosts did not drain `visits`: {stats}"
    );
    assert_counted(&cluster.hosts[0], &ids, &sent).await;
    assert_eq!(stats["dead_lettered_total"], 0, "{stats}");
    println!(
        "state over hosts (PostgreSQL): {MESSAGES} messages over {} customers, 3 hosts, one \
         SIGKILLed (host {}) holding leases with {left_at_kill} messages left, every count exact \
         ({} per customer)",
        sent.len(),
        victim + 1,
        MESSAGES / CUSTOMERS
    );
}

/// Two functions on two hosts sharing PostgreSQL add 1 to one key by compare-and-swap alone
/// (read, add, swap; the `kv` test guest's `cas-inc`), each from its own queue: a swap that
/// finds the key changed reads it again, and a key that changes between a swap and its commit
/// fails the settle, which retries the batch. No update is lost: the key ends at the number of
/// messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_swap_racing_across_hosts_loses_no_update() {
    const PER_QUEUE: usize = 500;
    let cluster = Cluster::start(2).await;
    let (status, body) = cluster.hosts[0].put_json("/v1/kv/b", json!({})).await;
    assert_eq!(status, 200, "{body}");
    for (function, queue) in [("left", "q-left"), ("right", "q-right")] {
        let server = &cluster.hosts[0];
        server
            .create_queue(json!({
                "name": queue,
                "visibility_timeout_ms": 1000,
                "max_attempts": 1000,
                "backoff": {"initial_ms": 5, "max_ms": 50},
            }))
            .await;
        server
            .deploy(function, guest("kv"), "kv_bucket=b&timeout_ms=1000")
            .await;
        server
            .trigger(
                function,
                json!({"queue": queue, "batch_size": 5, "max_concurrency": 2}),
            )
            .await;
    }
    for queue in ["q-left", "q-right"] {
        let bodies = (0..PER_QUEUE)
            .map(|_| json!({"body": "open b\ncas-inc b hits", "attributes": {"end": "strict"}}));
        cluster.hosts[1].enqueue_all(queue, bodies).await;
    }

    let server = &cluster.hosts[0];
    let drained = wait_for(Duration::from_secs(120), || async {
        remaining(server, "q-left").await + remaining(server, "q-right").await == 0
    })
    .await;
    let (left, right) = (server.stats("q-left").await, server.stats("q-right").await);
    assert!(
        drained,
        "the racing functions did not finish: {left} {right}"
    );
    let answer = server
        .http
        .get(server.url("/v1/kv/b/keys/hits"))
        .send()
        .await
        .unwrap();
    let hits: usize = answer.text().await.unwrap().parse().unwrap();
    let retried =
        left["retried_total"].as_u64().unwrap() + right["retried_total"].as_u64().unwrap();
    println!(
        "cas race (PostgreSQL, 2 hosts, 2 functions): {} messages, {hits} hits, {retried} \
         messages retried (a settle whose key changed after its swap is retried)",
        2 * PER_QUEUE
    );
    assert_eq!(hits, 2 * PER_QUEUE, "an update was lost or counted twice");
    assert_eq!(left["dead_lettered_total"], 0);
    assert_eq!(right["dead_lettered_total"], 0);
}
