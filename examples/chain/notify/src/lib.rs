//! Chain step 3 (orders → enrich → **notify**): prints one notification line per enriched order
//! and, when `NEXT_QUEUE` is set (to `notifications` in the chain's manifest), sends the line on
//! as `{"order_id": ..., "text": ...}`. Messages that are not JSON objects are dead-lettered.

use serde_json::{Map, Value, json};
use sluice_sdk::{Batch, Error, Message, Outcome};

fn handle(batch: Batch) -> Result<Outcome, Error> {
    let next = std::env::var("NEXT_QUEUE").ok().filter(|q| !q.is_empty());
    notify(batch, next.as_deref())
}

sluice_sdk::export_handler!(handle);

/// The handler proper, with the next queue (if any) as a parameter for the tests.
fn notify(batch: Batch, next: Option<&str>) -> Result<Outcome, Error> {
    let mut outcome = Outcome::ack_all();
    for msg in &batch {
        match notification(msg) {
            Ok((order_id, text)) => {
                println!("{text}");
                if let Some(queue) = next {
                    sluice_sdk::send_json(queue, &json!({"order_id": order_id, "text": text}))?;
                }
            }
            Err(e) => {
                outcome.dead_letter(msg, e);
            }
        }
    }
    Ok(outcome)
}

/// The order's id and the notification text; missing fields read as `?`.
fn notification(msg: &Message) -> Result<(String, String), Error> {
    let order: Map<String, Value> = msg.json()?;
    let field = |name| match order.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "?".to_owned(),
        Some(other) => other.to_string(),
    };
    let id = field("id");
    let text = format!(
        "notify: order {id} ({}, {} cents, {}) is ready",
        field("kind"),
        field("amount_cents"),
        field("tier"),
    );
    Ok((id, text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::testing;

    #[test]
    fn formats_a_notification() {
        let msg = testing::json_message(
            &json!({"id": "o-1", "kind": "book", "amount_cents": 1250, "tier": "small"}),
        )
        .build();
        assert_eq!(
            notification(&msg).unwrap(),
            (
                "o-1".into(),
                "notify: order o-1 (book, 1250 cents, small) is ready".into()
            )
        );
        let sparse = testing::json_message(&json!({"id": "o-2"})).build();
        assert_eq!(
            notification(&sparse).unwrap().1,
            "notify: order o-2 (?, ? cents, ?) is ready"
        );
    }

    #[test]
    fn acknowledges_orders_and_dead_letters_the_rest() {
        let report = testing::run(
            |batch| notify(batch, None),
            [
                testing::json_message(&json!({"id": "o-1"})),
                testing::message("nope"),
            ],
        );
        assert_eq!(report.acked(), ["msg-1"]);
        assert!(report.sent().is_empty());
    }

    #[test]
    fn sends_on_when_there_is_a_next_queue() {
        let report = testing::run(
            |batch| notify(batch, Some("notifications")),
            [testing::json_message(&json!({"id": "o-1"}))],
        );
        let sent = &report.committed()[0];
        assert_eq!(sent.queue, "notifications");
        assert_eq!(sent.json::<Value>().unwrap()["order_id"], "o-1");
    }
}
