//! Topics through the real binary: fan-out with filters to several queues (exact counts), a
//! replay from `earliest` while publishing goes on (every message once, in order, no gap at
//! the seam), all or nothing under SIGKILL during publishing, and the CLI.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::durability::all_messages;
use crate::support::{Server, assert_error, cli, wait_for};

/// The topic sequence numbers of a queue's messages, in queue order.
async fn seqs(server: &Server, queue: &str) -> Vec<u64> {
    all_messages(server, queue)
        .await
        .iter()
        .map(|m| {
            m["attributes"]["sluice-topic-seq"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

async fn subscribe(server: &Server, topic: &str, queue: &str, body: Value) -> Value {
    let (status, answer) = server
        .put_json(&format!("/v1/topics/{topic}/subscriptions/{queue}"), body)
        .await;
    assert_eq!(status, 200, "{answer}");
    answer
}

async fn publish_batch(server: &Server, topic: &str, messages: Vec<Value>) -> Value {
    let (status, answer) = server
        .post(
            &format!("/v1/topics/{topic}/messages/batch"),
            json!({"messages": messages}),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    answer
}

#[tokio::test]
async fn publishing_fans_out_through_filters() {
    let (server, _dir) = Server::start().await;
    for queue in ["audit", "orders", "eu"] {
        server.create_queue(json!({"name": queue})).await;
    }
    let (status, answer) = server
        .post(
            "/v1/topics",
            json!({"name": "events", "retention_ms": 3_600_000}),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    subscribe(&server, "events", "audit", json!({})).await;
    subscribe(
        &server,
        "events",
        "orders",
        json!({"filter": {"kind": "order"}}),
    )
    .await;
    cli(
        &server,
        &[
            "topic",
            "subscribe",
            "events",
            "eu",
            "--filter",
            r#"{"region": {"prefix": "eu-"}, "test": {"exists": false}}"#,
        ],
    );
    let (status, answer) = server
        .put_json(
            "/v1/topics/events/subscriptions/audit",
            json!({"filter": {"kind": {"suffix": "x"}}}),
        )
        .await;
    assert_error(status, &answer, 400, "bad_request");

    let kinds = ["order", "refund", "order", "signup"];
    let regions = ["eu-west", "us-east", "eu-north", "ap-south"];
    let messages: Vec<Value> = (0..100)
        .map(|i| {
            let mut attributes = json!({"kind": kinds[i % 4], "region": regions[i % 4]});
            if i % 10 == 0 {
                attributes["test"] = json!("yes");
            }
            json!({"body": format!("event {i}"), "attributes": attributes})
        })
        .collect();
    let answer = publish_batch(&server, "events", messages).await;
    assert_eq!(answer["published"].as_array().unwrap().len(), 100);
    let response = server
        .http
        .post(server.url("/v1/topics/events/messages"))
        .header("sluice-attr-kind", "order")
        .header("sluice-attr-region", "eu-central")
        .body("one more")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let one: Value = response.json().await.unwrap();
    assert_eq!(one, json!({"seq": 101, "copies": 3}));
    let out = cli(
        &server,
        &["publish", "events", "from the cli", "--attr", "kind=order"],
    );
    assert!(out.contains("published #102 into 2 queue(s)"), "{out}");

    // i % 4 == 0 or 2 are orders (50), plus two; eu are the same 50 minus the 10 tests, plus one.
    assert_eq!(server.stats("audit").await["visible"], 102);
    assert_eq!(server.stats("orders").await["visible"], 52);
    assert_eq!(server.stats("eu").await["visible"], 41);
    assert_eq!(seqs(&server, "audit").await, (1..=102).collect::<Vec<_>>());
    let (status, topic) = server.get("/v1/topics/events").await;
    assert_eq!(status, 200);
    assert_eq!(topic["published"], 102);
    assert_eq!(topic["subscriptions"].as_array().unwrap().len(), 3);
    let list = cli(&server, &["topic", "list"]);
    assert!(
        list.contains("events") && list.contains("audit, eu, orders"),
        "{list}"
    );

    // A subscribed queue is kept until it is unsubscribed.
    let (status, answer) = server.delete("/v1/queues/orders").await;
    assert_error(status, &answer, 409, "conflict");
    let (status, _) = server
        .delete("/v1/topics/events/subscriptions/orders")
        .await;
    assert_eq!(status, 204);
    let (status, answer) = server.delete("/v1/topics/nope").await;
    assert_error(status, &answer, 404, "not_found");
}

#[tokio::test]
async fn a_replay_from_earliest_meets_live_publishing_without_a_gap() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "replay"})).await;
    let (status, answer) = server.post("/v1/topics", json!({"name": "t"})).await;
    assert_eq!(status, 201, "{answer}");
    for round in 0..3 {
        let messages = (0..1000)
            .map(|i| json!({"body": format!("{round}-{i}")}))
            .collect();
        publish_batch(&server, "t", messages).await;
    }
    // Publishers keep going while the subscription replays its 3,000 messages of history.
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(3_000));
    let publisher = {
        let (stop, published) = (stop.clone(), published.clone());
        let (http, url) = (
            server.http.clone(),
            server.url("/v1/topics/t/messages/batch"),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let messages: Vec<Value> =
                    (0..20).map(|i| json!({"body": i.to_string()})).collect();
                let response = http
                    .post(&url)
                    .json(&json!({"messages": messages}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 201);
                published.fetch_add(20, Ordering::Relaxed);
            }
        })
    };
    let sub = subscribe(&server, "t", "replay", json!({"from": "earliest"})).await;
    assert_eq!(sub["replaying"], true, "{sub}");
    let caught_up = wait_for(Duration::from_secs(30), || async {
        let (_, topic) = server.get("/v1/topics/t").await;
        topic["subscriptions"][0]["replaying"] == json!(false)
    })
    .await;
    assert!(caught_up, "the replay never caught up");
    // Some publishing after the seam too.
    let now = published.load(Ordering::Relaxed);
    assert!(
        wait_for(Duration::from_secs(10), || async {
            published.load(Ordering::Relaxed) >= now + 100
        })
        .await
    );
    stop.store(true, Ordering::Relaxed);
    publisher.await.unwrap();
    let total = published.load(Ordering::Relaxed);
    let settled = wait_for(Duration::from_secs(10), || async {
        server.stats("replay").await["visible"] == json!(total)
    })
    .await;
    assert!(settled, "{} of {total}", server.stats("replay").await);
    assert_eq!(
        seqs(&server, "replay").await,
        (1..=total).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_publish_killed_midway_leaves_every_copy_or_none() {
    let (mut server, dir) = Server::start().await;
    for queue in ["a", "b", "c"] {
        server.create_queue(json!({"name": queue})).await;
    }
    server.post("/v1/topics", json!({"name": "t"})).await;
    for queue in ["a", "b", "c"] {
        subscribe(&server, "t", queue, json!({})).await;
    }
    let publishers: Vec<_> = (0..4)
        .map(|_| {
            let (http, url) = (
                server.http.clone(),
                server.url("/v1/topics/t/messages/batch"),
            );
            // Publishes until the host dies; returns how many were acknowledged and whether
            // the last one was cut off mid-request (not refused a connection afterwards).
            tokio::spawn(async move {
                let mut acked = 0u64;
                loop {
                    let messages: Vec<Value> =
                        (0..50).map(|i| json!({"body": i.to_string()})).collect();
                    match http
                        .post(&url)
                        .json(&json!({"messages": messages}))
                        .send()
                        .await
                    {
                        Ok(r) if r.status() == 201 => acked += 50,
                        Ok(r) => panic!("publish answered {}", r.status()),
                        Err(e) => return (acked, !e.is_connect()),
                    }
                }
            })
        })
        .collect();
    assert!(
        wait_for(Duration::from_secs(20), || async {
            server.stats("a").await["visible"].as_u64().unwrap_or(0) >= 2_000
        })
        .await
    );
    server.kill9();
    let mut acked = 0;
    let mut cut_off = 0;
    for p in publishers {
        let (published, in_flight) = p.await.unwrap();
        acked += published;
        cut_off += usize::from(in_flight);
    }
    assert!(cut_off > 0, "the kill caught no publish in flight");
    let server = Server::start_in(dir.path()).await;
    let (_, topic) = server.get("/v1/topics/t").await;
    let head = topic["published"].as_u64().unwrap();
    assert!(head >= acked, "{head} published, {acked} acknowledged");
    for queue in ["a", "b", "c"] {
        let mut got = seqs(&server, queue).await;
        got.sort_unstable();
        assert_eq!(got, (1..=head).collect::<Vec<_>>(), "queue {queue}");
    }
}

#[tokio::test]
async fn the_patterns_example_applies_from_its_manifest_and_runs() {
    let (server, dir) = Server::start().await;
    let manifest =
        std::fs::read_to_string(crate::support::repo().join("examples/patterns/sluice.toml"))
            .unwrap();
    let built = format!("{}/", crate::support::examples_dir().display());
    let manifest = manifest.replace("../target/wasm32-wasip2/release/", &built);
    let path = dir.path().join("sluice.toml");
    std::fs::write(&path, manifest).unwrap();
    let first = cli(&server, &["apply", path.to_str().unwrap()]);
    assert!(first.contains("topic events: created"), "{first}");
    let second = cli(&server, &["apply", path.to_str().unwrap()]);
    assert!(second.contains("topic events: exists"), "{second}");

    cli(
        &server,
        &[
            "publish",
            "events",
            "eu order",
            "--attr",
            "kind=order",
            "--attr",
            "region=eu-west",
        ],
    );
    cli(
        &server,
        &[
            "publish",
            "events",
            "us order",
            "--attr",
            "kind=order",
            "--attr",
            "region=us-east",
        ],
    );
    for step in ["packed", "shipped", "delivered"] {
        for order in [7, 8] {
            cli(
                &server,
                &[
                    "send",
                    "shipments",
                    &format!("order {order}: {step}"),
                    "--group",
                    &format!("order-{order}"),
                ],
            );
        }
    }
    assert_eq!(server.stats("eu-orders").await["visible"], 1);
    let handled = wait_for(Duration::from_secs(30), || async {
        let (_, audit) = server.get("/v1/functions/audit-log/invocations").await;
        let (_, shipped) = server.get("/v1/functions/shipments-log/invocations").await;
        let batches = |v: &Value| -> u64 {
            v["invocations"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|i| i["batch_size"].as_u64().unwrap_or(0))
                .sum()
        };
        batches(&audit) == 2 && batches(&shipped) == 6
    })
    .await;
    assert!(handled, "{}", cli(&server, &["logs", "shipments-log"]));
    // Each order's steps were printed in the order they were sent.
    let (_, log) = server.get("/v1/functions/shipments-log/invocations").await;
    let mut printed: Vec<String> = log["invocations"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .flat_map(|i| {
            i["logs"]
                .as_str()
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("order 7"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    printed.dedup();
    let steps = ["packed", "shipped", "delivered"];
    assert!(
        steps.iter().all(|s| printed.iter().any(|l| l.contains(s))),
        "{printed:?}"
    );
    let order = |s: &str| printed.iter().position(|l| l.contains(s)).unwrap();
    assert!(
        order("packed") < order("shipped") && order("shipped") < order("delivered"),
        "{printed:?}"
    );
}
