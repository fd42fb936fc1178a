//! The first link of a chain: parses each message as a JSON order
//! (`{"id": "o-1", "kind": "book", "amount": 12.5}`) and forwards it, body unchanged, to a queue
//! chosen by its kind. Messages that are not valid orders are dead-lettered with the parse error.
//!
//! Queues, from the environment: `ROUTE_BOOK` (default `orders-books`), `ROUTE_MUSIC`
//! (`orders-music`) and `ROUTE_OTHER` (`orders-other`, for every other kind). With
//! `ROUTED_TOPIC` set, each routed order is also published to that topic, with attributes `kind`
//! and `queue`, for whoever subscribes. A send or publish that fails (a queue or topic that does
//! not exist) fails the batch, so nothing is lost: it is retried whole.

use serde::Deserialize;
use sluice_sdk::{Batch, Error, Outcome, Outgoing, Publication};

fn handle(batch: Batch) -> Result<Outcome, Error> {
    route(batch, &Routes::from_lookup(|name| std::env::var(name).ok()))
}

/// Routes every order of `batch` by `routes`.
fn route(batch: Batch, routes: &Routes) -> Result<Outcome, Error> {
    let mut outcome = Outcome::ack_all();
    for msg in &batch {
        let order = match msg.json::<Order>() {
            Ok(order) => order,
            Err(e) => {
                outcome.dead_letter(msg, e);
                continue;
            }
        };
        let queue = routes.queue_for(&order.kind);
        let mut outgoing = Outgoing::new(queue).body(msg.body());
        for (name, value) in msg.attributes() {
            outgoing = outgoing.attribute(name, value);
        }
        outgoing
            .attribute("order-id", &order.id)
            .attribute("kind", &order.kind)
            .send()?;
        if let Some(topic) = &routes.topic {
            Publication::new(topic)
                .body(msg.body())
                .attribute("kind", &order.kind)
                .attribute("queue", queue)
                .publish()?;
        }
    }
    Ok(outcome)
}

sluice_sdk::export_handler!(handle);

/// The fields routing needs; any others are forwarded untouched in the body.
#[derive(Debug, Deserialize)]
struct Order {
    id: String,
    kind: String,
    // Required so that malformed orders are dead-lettered here, at the start of the chain.
    #[allow(dead_code)]
    amount: f64,
}

/// Destination queue per kind of order.
#[derive(Debug, PartialEq)]
struct Routes {
    book: String,
    music: String,
    other: String,
    /// Where routed orders are also published, if anywhere.
    topic: Option<String>,
}

impl Routes {
    /// Reads the routes through `lookup` (the environment, in the handler), with defaults.
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name, default: &str| lookup(name).unwrap_or_else(|| default.to_owned());
        Routes {
            book: get("ROUTE_BOOK", "orders-books"),
            music: get("ROUTE_MUSIC", "orders-music"),
            other: get("ROUTE_OTHER", "orders-other"),
            topic: lookup("ROUTED_TOPIC"),
        }
    }

    fn queue_for(&self, kind: &str) -> &str {
        match kind {
            "book" => &self.book,
            "music" => &self.music,
            _ => &self.other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::testing::{self, Harness};
    use sluice_sdk::{Disposition, testing::RunResult};

    fn order(id: &str, kind: &str) -> testing::TestMessage {
        testing::json_message(&serde_json::json!({"id": id, "kind": kind, "amount": 12.5}))
    }

    #[test]
    fn routes_by_kind_with_the_body_unchanged() {
        let report = testing::run(
            handle,
            [
                order("o-1", "book"),
                order("o-2", "music").attribute("tenant", "acme"),
                order("o-3", "film"),
            ],
        );
        assert_eq!(report.acked(), ["msg-1", "msg-2", "msg-3"]);
        let queues: Vec<_> = report
            .committed()
            .iter()
            .map(|m| m.queue.as_str())
            .collect();
        assert_eq!(queues, ["orders-books", "orders-music", "orders-other"]);
        let music = &report.sent()[1];
        assert_eq!(music.attribute("tenant"), Some("acme"));
        assert_eq!(music.attribute("order-id"), Some("o-2"));
        assert_eq!(music.attribute("kind"), Some("music"));
        assert_eq!(music.json::<serde_json::Value>().unwrap()["amount"], 12.5);
        assert!(
            report.published().is_empty(),
            "no ROUTED_TOPIC, no publications"
        );
    }

    #[test]
    fn publishes_routed_orders_when_a_topic_is_set() {
        let routes = Routes::from_lookup(|name| (name == "ROUTED_TOPIC").then(|| "routed".into()));
        let report = testing::run(
            |batch| route(batch, &routes),
            [order("o-1", "music"), testing::message("{not json")],
        );
        assert_eq!(report.acked(), ["msg-1"]);
        let published = report.committed_publications();
        assert_eq!(published.len(), 1, "only what was routed");
        assert_eq!(published[0].topic, "routed");
        assert_eq!(published[0].attribute("kind"), Some("music"));
        assert_eq!(published[0].attribute("queue"), Some("orders-music"));

        let report = Harness::new()
            .topics(["other"])
            .run(|batch| route(batch, &routes), [order("o-1", "book")]);
        assert_eq!(
            report.result(),
            &RunResult::Failed(Error::new("topic `routed` does not exist"))
        );
    }

    #[test]
    fn dead_letters_what_is_not_an_order() {
        let report = testing::run(
            handle,
            [
                testing::message("{not json"),
                testing::message(r#"{"id": "o-1", "kind": "book"}"#),
                order("o-2", "book"),
            ],
        );
        assert_eq!(report.acked(), ["msg-3"]);
        let Some(Disposition::DeadLetter(reason)) = report.disposition("msg-1") else {
            panic!("msg-1 not dead-lettered: {:?}", report.result());
        };
        assert!(
            reason.starts_with("invalid JSON body: key must be a string"),
            "{reason}"
        );
        let Some(Disposition::DeadLetter(reason)) = report.disposition("msg-2") else {
            panic!("msg-2 not dead-lettered: {:?}", report.result());
        };
        assert!(reason.contains("missing field `amount`"), "{reason}");
        assert_eq!(report.sent().len(), 1);
    }

    #[test]
    fn a_missing_queue_fails_the_batch() {
        let report = Harness::new()
            .queues(["orders-books"])
            .run(handle, [order("o-1", "book"), order("o-2", "music")]);
        assert_eq!(
            report.result(),
            &RunResult::Failed(Error::new("queue `orders-music` does not exist"))
        );
        assert!(report.committed().is_empty());
    }

    #[test]
    fn routes_come_from_the_environment_with_defaults() {
        let routes = Routes::from_lookup(|name| (name == "ROUTE_MUSIC").then(|| "vinyl".into()));
        assert_eq!(routes.queue_for("book"), "orders-books");
        assert_eq!(routes.queue_for("music"), "vinyl");
        assert_eq!(routes.queue_for("anything"), "orders-other");
    }
}
