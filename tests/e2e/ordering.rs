//! Priorities and ordered groups through the real binary: a backlog drains highest priority
//! first; a group's messages go one at a time in enqueue order through a trigger running
//! batches concurrently (dead letters included) and through pull consumers (a retried message
//! holds its group while the other groups go on); bad priorities and groups are refused.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Server, assert_error, cli, example, wait_for};

async fn receive(server: &Server, queue: &str, max: u64) -> Vec<Value> {
    let (status, answer) = server
        .post(
            &format!("/v1/queues/{queue}/messages/receive"),
            json!({"max_messages": max}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    answer["messages"].as_array().cloned().unwrap_or_default()
}

async fn ack(server: &Server, queue: &str, messages: &[&Value]) {
    let receipts: Vec<&Value> = messages.iter().map(|m| &m["receipt"]).collect();
    let (status, answer) = server
        .post(
            &format!("/v1/queues/{queue}/messages/ack"),
            json!({"receipts": receipts}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
}

fn bodies(messages: &[Value]) -> Vec<&str> {
    messages
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_backlog_drains_highest_priority_first() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "jobs"})).await;
    // 300 messages, priorities spread over 0–9, enqueued lowest first in each round.
    let messages: Vec<Value> = (0..300)
        .map(|i| json!({"body": format!("p{}-{i:03}", i % 10), "priority": i % 10}))
        .collect();
    let (status, answer) = server
        .post(
            "/v1/queues/jobs/messages/batch",
            json!({"messages": messages}),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    // One message with the header and the CLI; the default priority is 4.
    let response = server
        .http
        .post(server.url("/v1/queues/jobs/messages"))
        .header("sluice-priority", "9")
        .body("header-9")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    cli(&server, &["send", "jobs", "cli-9", "--priority", "9"]);
    cli(&server, &["send", "jobs", "cli-default"]);

    let first = receive(&server, "jobs", 40).await;
    let got = bodies(&first);
    assert!(got[..30].iter().all(|b| b.starts_with("p9-")), "{got:?}");
    assert_eq!(got[30..32], ["header-9", "cli-9"]);
    assert!(got[32..].iter().all(|b| b.starts_with("p8-")), "{got:?}");
    assert!(
        first
            .iter()
            .all(|m| m["priority"] == 9 || m["priority"] == 8)
    );
    // Within a priority, enqueue order.
    let nines: Vec<&&str> = got[..30].iter().collect();
    let mut sorted = nines.clone();
    sorted.sort();
    assert_eq!(nines, sorted);

    // The rest drains by priority, 10 at a time; the default lands among the 4s.
    let mut priorities = Vec::new();
    let mut default_at = None;
    loop {
        let batch = receive(&server, "jobs", 10).await;
        if batch.is_empty() {
            break;
        }
        for m in &batch {
            priorities.push(m["priority"].as_u64().unwrap());
            if m["body"] == "cli-default" {
                default_at = Some(m["priority"].clone());
            }
        }
        ack(&server, "jobs", &batch.iter().collect::<Vec<_>>()).await;
    }
    assert_eq!(priorities.len(), 300 + 3 - first.len());
    assert_eq!(default_at, Some(json!(4)));
    // Every 10th lease serves one priority out of turn (its first lease here is lease 10,
    // for priority 0); apart from those, priorities never rise.
    let out_of_turn = priorities.windows(2).filter(|w| w[1] > w[0]).count();
    assert!(out_of_turn <= priorities.len() / 50, "{priorities:?}");
}

#[tokio::test]
async fn bad_priorities_and_groups_are_refused_and_store_nothing() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "q"})).await;
    for (priority, group) in [
        (json!(10), json!("g")),
        (json!(1), json!("")),
        (json!(1), json!("x".repeat(129))),
    ] {
        let (status, answer) = server
            .post(
                "/v1/queues/q/messages/batch",
                json!({"messages": [{"body": "ok"}, {"body": "bad", "priority": priority, "group": group}]}),
            )
            .await;
        assert_error(status, &answer, 400, "bad_request");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("messages[1]: "),
            "{answer}"
        );
    }
    let response = server
        .http
        .post(server.url("/v1/queues/q/messages"))
        .header("sluice-priority", "12")
        .body("bad")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let answer: Value = response.json().await.unwrap();
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("0 (lowest) to 9 (highest)"),
        "{answer}"
    );
    assert_eq!(server.stats("q").await["visible"], 0);
}

#[tokio::test]
async fn pull_consumers_get_a_group_in_order_and_a_retry_holds_it() {
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "q"})).await;
    let messages: Vec<Value> = (0..4)
        .flat_map(|i| ["a", "b", "c"].map(|g| json!({"body": format!("{g}{i}"), "group": g})))
        .chain([json!({"body": "loose"})])
        .collect();
    let (status, answer) = server
        .post("/v1/queues/q/messages/batch", json!({"messages": messages}))
        .await;
    assert_eq!(status, 201, "{answer}");
    let response = server
        .http
        .post(server.url("/v1/queues/q/messages"))
        .header("sluice-group", "a")
        .body("a4")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    // One message per group at a time, each group's oldest.
    let first = receive(&server, "q", 10).await;
    assert_eq!(bodies(&first), ["a0", "b0", "c0", "loose"]);
    assert_eq!(first[0]["group"], "a");
    assert!(receive(&server, "q", 10).await.is_empty());

    // a0 is retried: group a waits for it while b and c go on.
    let (status, answer) = server
        .post(
            "/v1/queues/q/messages/retry",
            json!({"receipts": [first[0]["receipt"]], "delay_ms": 60_000}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    ack(&server, "q", &[&first[1], &first[2], &first[3]]).await;
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    loop {
        let batch = receive(&server, "q", 10).await;
        if batch.is_empty() {
            break;
        }
        for m in &batch {
            seen.entry(m["group"].as_str().unwrap().to_owned())
                .or_default()
                .push(m["body"].as_str().unwrap().to_owned());
        }
        ack(&server, "q", &batch.iter().collect::<Vec<_>>()).await;
    }
    assert_eq!(seen.get("a"), None, "group a is held by its retried head");
    assert_eq!(seen["b"], ["b1", "b2", "b3"]);
    assert_eq!(seen["c"], ["c1", "c2", "c3"]);
    let stats = server.stats("q").await;
    assert_eq!(stats["delayed"], 1);
    assert_eq!(stats["visible"], 4, "{stats}");
}

#[tokio::test]
async fn a_trigger_keeps_each_group_in_order_across_concurrent_batches() {
    const CUSTOMERS: usize = 8;
    const ORDERS: usize = 240;
    let (server, _dir) = Server::start().await;
    server.create_queue(json!({"name": "dlq"})).await;
    server
        .create_queue(json!({"name": "orders", "dead_letter_queue": "dlq"}))
        .await;
    server.create_queue(json!({"name": "routed"})).await;
    server
        .deploy(
            "router",
            example("router"),
            "env=ROUTE_BOOK=routed&env=ROUTE_MUSIC=routed&env=ROUTE_OTHER=routed",
        )
        .await;
    // Every 20th order is malformed: the router dead-letters it and its group goes on.
    let messages: Vec<Value> = (0..ORDERS)
        .map(|i| {
            let body = match i % 20 {
                7 => "not an order".to_owned(),
                _ => json!({"id": format!("{i}"), "kind": "book", "amount": 1.0}).to_string(),
            };
            json!({"body": body, "group": format!("customer-{}", i % CUSTOMERS)})
        })
        .collect();
    let (status, answer) = server
        .post(
            "/v1/queues/orders/messages/batch",
            json!({"messages": messages}),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    server
        .trigger(
            "router",
            json!({"queue": "orders", "batch_size": 5, "max_concurrency": 4}),
        )
        .await;
    let dead = ORDERS / 20;
    let routed = wait_for(Duration::from_secs(30), || async {
        server.stats("routed").await["visible"] == json!(ORDERS - dead)
    })
    .await;
    assert!(routed, "routed: {}", server.stats("routed").await);
    assert_eq!(server.stats("dlq").await["visible"], json!(dead));

    // The router sends in the order it handles: per customer, order ids only rise.
    let (status, peeked) = server.get("/v1/queues/routed/messages?limit=1000").await;
    assert_eq!(status, 200);
    let mut last: BTreeMap<usize, usize> = BTreeMap::new();
    for m in peeked["messages"].as_array().unwrap() {
        let id: usize = m["attributes"]["order-id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let customer = id % CUSTOMERS;
        if let Some(before) = last.insert(customer, id) {
            assert!(
                before < id,
                "customer {customer}: order {id} after {before}"
            );
        }
    }
    assert_eq!(last.len(), CUSTOMERS);
}
