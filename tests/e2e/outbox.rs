//! The handler contract's two versions through the real binary: a component built against
//! `sluice:queue@0.1.0` keeps deploying and running beside one built against `@0.2.0`, whose
//! outbox sends with a priority and a group and publishes to topics, committed with the ack
//! (a publish to a missing topic fails the batch and publishes nothing).

use std::time::Duration;

use serde_json::json;

use crate::durability::all_messages;
use crate::support::{Server, guest, wait_for};

#[tokio::test]
async fn a_0_1_0_component_runs_beside_a_0_2_0_one_whose_sends_carry_priority_and_group() {
    let (server, _dir) = Server::start().await;
    for queue in ["old", "new", "out"] {
        server.create_queue(json!({"name": queue})).await;
    }
    // `ok` is built from wit/0.1.0 on purpose; `outbox2` from the current 0.2.0.
    server.deploy("old", guest("ok"), "").await;
    server.deploy("new", guest("outbox2"), "").await;
    server.trigger("old", json!({"queue": "old"})).await;
    server.trigger("new", json!({"queue": "new"})).await;

    server
        .enqueue_all("old", (0..20).map(|i| json!({"body": format!("m{i}")})))
        .await;
    let (status, answer) = server
        .post(
            "/v1/queues/new/messages/batch",
            json!({"messages": [
                {"body": "urgent", "attributes": {"send": "out", "priority": "9", "group": "g-1"}},
                {"body": "plain", "attributes": {"send": "out"}},
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    assert!(
        wait_for(Duration::from_secs(20), || async {
            server.stats("old").await["acked_total"] == 20
                && server.stats("out").await["visible"] == 2
        })
        .await,
        "both versions ran: old {}, out {}",
        server.stats("old").await,
        server.stats("out").await
    );
    let out = all_messages(&server, "out").await;
    let shape: Vec<(&str, u64, Option<&str>)> = out
        .iter()
        .map(|m| {
            (
                m["body"].as_str().unwrap(),
                m["priority"].as_u64().unwrap(),
                m["group"].as_str(),
            )
        })
        .collect();
    assert_eq!(shape, [("urgent", 9, Some("g-1")), ("plain", 4, None)]);
}

#[tokio::test]
async fn a_handler_publishes_to_a_topic_with_its_ack_or_not_at_all() {
    let (server, _dir) = Server::start().await;
    for queue in ["in", "copies", "dead"] {
        server.create_queue(json!({"name": queue})).await;
    }
    let (status, answer) = server
        .patch(
            "/v1/queues/in",
            json!({"max_attempts": 2, "dead_letter_queue": "dead"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = server.post("/v1/topics", json!({"name": "events"})).await;
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = server
        .put_json("/v1/topics/events/subscriptions/copies", json!({}))
        .await;
    assert_eq!(status, 200, "{answer}");
    server.deploy("pub", guest("outbox2"), "").await;
    server.trigger("pub", json!({"queue": "in"})).await;

    let (status, sent) = server
        .post(
            "/v1/queues/in/messages/batch",
            json!({"messages": [{"body": "hello", "attributes": {"publish": "events"}}]}),
        )
        .await;
    assert_eq!(status, 201, "{sent}");
    let id = sent["ids"][0].as_str().unwrap().to_owned();
    assert!(
        wait_for(Duration::from_secs(20), || async {
            server.stats("copies").await["visible"] == 1
        })
        .await
    );
    let copies = all_messages(&server, "copies").await;
    assert_eq!(copies[0]["body"], "hello");
    assert_eq!(copies[0]["attributes"]["from"], id.as_str());
    assert_eq!(copies[0]["attributes"]["sluice-topic-seq"], "1");

    // A publish to a topic that does not exist fails the batch: retried, then dead-lettered,
    // and nothing reaches the topic.
    server
        .post(
            "/v1/queues/in/messages/batch",
            json!({"messages": [{"body": "lost", "attributes": {"publish": "nope"}}]}),
        )
        .await;
    assert!(
        wait_for(Duration::from_secs(30), || async {
            server.stats("dead").await["visible"] == 1
        })
        .await,
        "dead-lettered after its attempts"
    );
    let dead = all_messages(&server, "dead").await;
    assert!(
        dead[0]["attributes"]["sluice-dead-letter-reason"]
            .as_str()
            .unwrap()
            .contains("nope"),
        "{dead:?}"
    );
    let (_, topic) = server.get("/v1/topics/events").await;
    assert_eq!(topic["published"], 1, "{topic}");
    assert_eq!(server.stats("copies").await["visible"], 1);
}
