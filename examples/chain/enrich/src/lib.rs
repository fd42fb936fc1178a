//! Chain step 2 (orders → **enrich** → notify): reads an order as JSON, adds `amount_cents`,
//! `tier` and `received_at_ms`, and sends it to the next queue (`NEXT_QUEUE`, default
//! `enriched`). Messages that are not orders are dead-lettered; everything else the order holds
//! is passed on unchanged.
//!
//! For demonstrations and tests, `FAIL_FIRST_ATTEMPT_PERCENT=N` makes about N% of batches fail
//! on their first delivery *after* sending: the host then discards those sends and retries the
//! batch, which shows that retries never duplicate a send.

use serde_json::{Map, Value, json};
use sluice_sdk::{Batch, Context, Error, Message, Outcome, Outgoing};

fn handle(batch: Batch) -> Result<Outcome, Error> {
    let next = std::env::var("NEXT_QUEUE").unwrap_or_else(|_| "enriched".to_owned());
    let fail_percent = std::env::var("FAIL_FIRST_ATTEMPT_PERCENT")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .unwrap_or(0);
    let chosen = batch
        .iter()
        .next()
        .is_some_and(|first| first.attempt() == 1 && bucket(first.id()) < fail_percent);
    let outcome = enrich_all(batch, &next)?;
    if chosen {
        return Err(Error::new(
            "simulated failure on the first attempt (FAIL_FIRST_ATTEMPT_PERCENT)",
        ));
    }
    Ok(outcome)
}

/// A stable pseudo-random bucket in 0..100 for a message id.
fn bucket(id: &str) -> u32 {
    let hash = id.bytes().fold(2_166_136_261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    });
    hash % 100
}

sluice_sdk::export_handler!(handle);

/// The handler proper, with the next queue as a parameter for the tests.
fn enrich_all(batch: Batch, next: &str) -> Result<Outcome, Error> {
    let mut outcome = Outcome::ack_all();
    for msg in &batch {
        match enrich(msg) {
            Ok(order) => {
                let mut outgoing = Outgoing::new(next).json(&order)?;
                for (name, value) in msg.attributes() {
                    outgoing = outgoing.attribute(name, value);
                }
                outgoing.send()?;
            }
            Err(e) => {
                outcome.dead_letter(msg, e);
            }
        }
    }
    Ok(outcome)
}

/// Orders of at least this amount are `large`.
const LARGE_ORDER: f64 = 100.0;

/// The order in `msg` with the extra fields.
fn enrich(msg: &Message) -> Result<Map<String, Value>, Error> {
    let mut order: Map<String, Value> = msg.json()?;
    order
        .get("id")
        .and_then(Value::as_str)
        .context("order has no string `id`")?;
    let amount = order
        .get("amount")
        .and_then(Value::as_f64)
        .context("order has no numeric `amount`")?;
    let tier = if amount >= LARGE_ORDER {
        "large"
    } else {
        "small"
    };
    // Rounded, not truncated: 0.29 * 100.0 is 28.999999999999996.
    let cents = (amount * 100.0).round() as i64;
    order.insert("amount_cents".into(), json!(cents));
    order.insert("tier".into(), json!(tier));
    order.insert("received_at_ms".into(), json!(msg.enqueued_at_ms()));
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::{Disposition, testing};
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn enriches_and_sends_on() {
        let report = testing::run(
            handle,
            [
                testing::json_message(&json!({"id": "o-1", "kind": "book", "amount": 150.29}))
                    .attribute("tenant", "acme")
                    .enqueued_at(UNIX_EPOCH + Duration::from_millis(1_000)),
            ],
        );
        assert_eq!(report.acked(), ["msg-1"]);
        let sent = &report.committed()[0];
        assert_eq!(sent.queue, "enriched");
        assert_eq!(sent.attribute("tenant"), Some("acme"));
        assert_eq!(
            sent.json::<Value>().unwrap(),
            json!({"id": "o-1", "kind": "book", "amount": 150.29,
                   "amount_cents": 15029, "tier": "large", "received_at_ms": 1000})
        );
    }

    #[test]
    fn dead_letters_what_is_not_an_order() {
        let report = testing::run(
            handle,
            [
                testing::message("[1, 2]"),
                testing::json_message(&json!({"id": "o-1"})),
                testing::json_message(&json!({"id": "o-2", "amount": 3})),
            ],
        );
        assert_eq!(report.acked(), ["msg-3"]);
        assert!(
            matches!(report.disposition("msg-1"), Some(Disposition::DeadLetter(r)) if r.starts_with("invalid JSON body"))
        );
        assert_eq!(
            report.disposition("msg-2"),
            Some(&Disposition::DeadLetter(
                "order has no numeric `amount`".into()
            ))
        );
        assert_eq!(report.sent()[0].json::<Value>().unwrap()["tier"], "small");
    }

    #[test]
    fn the_next_queue_is_configurable() {
        let report = testing::run(
            |batch| enrich_all(batch, "step-3"),
            [testing::json_message(&json!({"id": "o-1", "amount": 1}))],
        );
        assert_eq!(report.committed()[0].queue, "step-3");
    }
}
