//! Function chains, as in `examples/chain`: orders → router → to-enrich → enrich → enriched →
//! notify → notifications. Sends commit atomically with the ack, so retries never duplicate a
//! send, and a SIGKILL loses nothing.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::durability::all_messages;
use crate::support::{Server, example, wait_for};

const ORDERS: usize = 10_000;

/// Creates the chain's queues and functions: `router` sends every kind of order to `to-enrich`
/// (as the example's manifest does), and `enrich` fails about a third of its batches on their
/// first attempt, after it has already sent their messages.
async fn deploy_chain(server: &Server) {
    for queue in [
        "orders-dlq",
        "orders",
        "to-enrich",
        "enriched",
        "notifications",
    ] {
        let mut body = json!({
            "name": queue,
            "visibility_timeout_ms": 1000,
            "max_attempts": 5,
            "backoff": {"initial_ms": 20, "max_ms": 200}
        });
        if ["orders", "to-enrich", "enriched"].contains(&queue) {
            body["dead_letter_queue"] = json!("orders-dlq");
        }
        server.create_queue(body).await;
    }
    server
        .deploy(
            "router",
            example("router"),
            "timeout_ms=1000&env=ROUTE_BOOK=to-enrich&env=ROUTE_MUSIC=to-enrich&env=ROUTE_OTHER=to-enrich",
        )
        .await;
    server
        .deploy(
            "enrich",
            example("chain-enrich"),
            "timeout_ms=1000&env=NEXT_QUEUE=enriched&env=FAIL_FIRST_ATTEMPT_PERCENT=33",
        )
        .await;
    server
        .deploy(
            "notify",
            example("chain-notify"),
            "timeout_ms=1000&env=NEXT_QUEUE=notifications",
        )
        .await;
    for (function, queue) in [
        ("router", "orders"),
        ("enrich", "to-enrich"),
        ("notify", "enriched"),
    ] {
        server
            .trigger(
                function,
                json!({"queue": queue, "batch_size": 100, "max_concurrency": 2}),
            )
            .await;
    }
}

async fn enqueue_orders(server: &Server) {
    // Every route of the router is taken.
    let kinds = ["book", "music", "game"];
    let orders = (0..ORDERS).map(|i| {
        json!({"body": json!({"id": format!("o-{i}"), "kind": kinds[i % 3], "amount": i as f64 / 10.0}).to_string()})
    });
    server.enqueue_all("orders", orders).await;
}

/// Order id → how many notifications carry it.
pub(crate) async fn notification_counts(server: &Server) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for message in all_messages(server, "notifications").await {
        let body: Value = serde_json::from_str(message["body"].as_str().unwrap()).unwrap();
        let id = body["order_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no order id in {body}"));
        *counts.entry(id.to_owned()).or_default() += 1;
    }
    counts
}

async fn chain_done(server: &Server, deadline: Duration) -> bool {
    wait_for(deadline, || async {
        let done = |s: &Value| s["visible"] == 0 && s["delayed"] == 0 && s["in_flight"] == 0;
        done(&server.stats("orders").await)
            && done(&server.stats("to-enrich").await)
            && done(&server.stats("enriched").await)
    })
    .await
}

#[tokio::test]
async fn chain_delivers_each_order_exactly_once_despite_failed_first_attempts() {
    let (server, _dir) = Server::start().await;
    deploy_chain(&server).await;
    enqueue_orders(&server).await;
    assert!(
        chain_done(&server, Duration::from_secs(180)).await,
        "chain did not finish"
    );

    let routed = server.stats("orders").await;
    assert_eq!(
        routed["acked_total"], ORDERS,
        "the router took every order: {routed}"
    );
    let enrich = server.stats("to-enrich").await;
    assert_eq!(
        enrich["enqueued_total"], ORDERS,
        "routed once each: {enrich}"
    );
    assert!(
        enrich["retried_total"].as_u64().unwrap() > 0,
        "some first attempts failed: {enrich}"
    );
    let counts = notification_counts(&server).await;
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    println!(
        "chain: {ORDERS} orders in, {} distinct notifications out, {duplicates} duplicates, {} messages retried at the enrich step",
        counts.len(),
        enrich["retried_total"]
    );
    assert_eq!(counts.len(), ORDERS, "every order reaches the end");
    assert_eq!(duplicates, 0, "retries never duplicate a send");
    assert_eq!(server.stats("orders-dlq").await["visible"], 0);
}

#[tokio::test]
async fn sigkill_during_the_chain_loses_nothing() {
    let (mut server, dir) = Server::start().await;
    deploy_chain(&server).await;
    enqueue_orders(&server).await;
    let started = wait_for(Duration::from_secs(60), || async {
        server.stats("notifications").await["visible"]
            .as_u64()
            .unwrap_or(0)
            >= 2_000
    })
    .await;
    assert!(started, "chain made no progress");
    server.kill9();

    let server = Server::start_in(dir.path()).await;
    assert!(
        chain_done(&server, Duration::from_secs(180)).await,
        "chain did not finish after restart"
    );
    let counts = notification_counts(&server).await;
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    println!(
        "chain after SIGKILL: {ORDERS} orders in, {} distinct out, {duplicates} duplicate notifications \
         (batches in flight at the kill were delivered again; their sends had not committed)",
        counts.len()
    );
    assert_eq!(counts.len(), ORDERS, "nothing lost");
    // Sends commit with the ack: a batch killed mid-flight committed neither, so its redelivery
    // sends each message once.
    assert_eq!(
        duplicates, 0,
        "no send is duplicated, even across a SIGKILL"
    );
}
