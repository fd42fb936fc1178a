//! A per-customer counter kept in key-value state: for each message, adds 1 to the key
//! `count:<customer>` of the bucket `counts` (the message's `customer` attribute) and remembers
//! the message under `seen:<message id>` in the bucket `seen` (created with a one-hour `ttl_ms`,
//! so the record expires on its own), its value the customer.
//!
//! The writes commit with the batch's acknowledgement, or not at all: a batch that fails, traps
//! or dies with its host is retried with none of its writes kept, so every count is exactly the
//! number of acknowledged messages of that customer, however often messages are redelivered. A
//! message without a `customer` attribute is dead-lettered with a reason that says what to add.

use sluice_sdk::{Batch, Error, Message, Outcome, kv};

/// The attribute that names the customer a message counts for.
const CUSTOMER_ATTRIBUTE: &str = "customer";
/// The bucket of counters, `count:<customer>` → ASCII decimal.
const COUNTS: &str = "counts";
/// The bucket of messages seen, `seen:<message id>` → customer.
const SEEN: &str = "seen";

fn handle(batch: Batch) -> Result<Outcome, Error> {
    // Opening fails (and the batch is retried) when the function was deployed without
    // `--kv counts --kv seen`, or the buckets do not exist; the error says which.
    let counts = kv::open(COUNTS)?;
    let seen = kv::open(SEEN)?;
    let mut outcome = Outcome::ack_all();
    for msg in &batch {
        let counter = match counter_key(msg) {
            Ok(key) => key,
            Err(reason) => {
                println!("{}: dead-lettered: {reason}", msg.id());
                outcome.dead_letter(msg, reason);
                continue;
            }
        };
        let count = counts.increment(&counter, 1)?;
        seen.set(&format!("seen:{}", msg.id()), &counter["count:".len()..])?;
        println!("{}: {counter} = {count}", msg.id());
    }
    Ok(outcome)
}

sluice_sdk::export_handler!(handle);

/// The counter `msg` adds to, or why it has none.
fn counter_key(msg: &Message) -> Result<String, String> {
    let customer = msg
        .attribute(CUSTOMER_ATTRIBUTE)
        .filter(|c| !c.is_empty())
        .ok_or(
            "no `customer` attribute to count the message for: send it with \
             `--attr customer=<id>` (header `Sluice-Attr-Customer`)",
        )?;
    let key = format!("count:{customer}");
    if key.len() > kv::MAX_KEY_BYTES {
        return Err(format!(
            "the `customer` attribute is {} bytes; a counter key is at most {} bytes, so keep \
             the customer id under {}",
            customer.len(),
            kv::MAX_KEY_BYTES,
            kv::MAX_KEY_BYTES - "count:".len() + 1
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use sluice_sdk::Disposition;
    use sluice_sdk::testing::{self, Harness};

    use super::*;

    fn order(customer: &str) -> testing::TestMessage {
        testing::message("{}").attribute(CUSTOMER_ATTRIBUTE, customer)
    }

    fn harness() -> Harness {
        Harness::new().bucket(COUNTS).bucket(SEEN)
    }

    fn count(harness: &Harness, customer: &str) -> Option<String> {
        harness
            .get(COUNTS, &format!("count:{customer}"))
            .map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn each_message_adds_one_to_its_customer_and_is_remembered() {
        let harness = harness();
        let report = harness.run(handle, [order("acme"), order("acme"), order("globex")]);
        assert_eq!(report.acked(), ["msg-1", "msg-2", "msg-3"]);
        assert_eq!(count(&harness, "acme").as_deref(), Some("2"));
        assert_eq!(count(&harness, "globex").as_deref(), Some("1"));
        assert_eq!(
            harness.keys(SEEN),
            ["seen:msg-1", "seen:msg-2", "seen:msg-3"]
        );
        assert_eq!(harness.get(SEEN, "seen:msg-3").unwrap(), b"globex");

        // The next batch adds to what the first committed.
        harness.run(handle, [order("acme").id("later")]);
        assert_eq!(count(&harness, "acme").as_deref(), Some("3"));
    }

    #[test]
    fn a_message_without_a_customer_is_dead_lettered_and_the_rest_still_count() {
        let harness = harness();
        let report = harness.run(
            handle,
            [
                order("acme"),
                testing::message("{}"),
                order(""),
                order(&"x".repeat(kv::MAX_KEY_BYTES)),
            ],
        );
        assert_eq!(report.acked(), ["msg-1"]);
        for id in ["msg-2", "msg-3"] {
            match report.disposition(id) {
                Some(Disposition::DeadLetter(reason)) => {
                    assert!(reason.starts_with("no `customer` attribute"), "{reason}")
                }
                other => panic!("{id}: {other:?}"),
            }
        }
        match report.disposition("msg-4") {
            Some(Disposition::DeadLetter(reason)) => {
                assert!(
                    reason.contains("a counter key is at most 1024 bytes"),
                    "{reason}"
                )
            }
            other => panic!("msg-4: {other:?}"),
        }
        assert_eq!(count(&harness, "acme").as_deref(), Some("1"));
        assert_eq!(harness.keys(SEEN), ["seen:msg-1"]);
    }

    #[test]
    fn a_failed_batch_counts_nothing() {
        let harness = harness().kv(COUNTS, "count:acme", "41");
        // The counter holds something that is not a number: the increment fails the batch
        // after the first message's writes, and none of them is kept.
        let harness = harness.kv(COUNTS, "count:broken", "many");
        let report = harness.run(handle, [order("acme"), order("broken")]);
        let error = report.error().expect("the batch fails");
        assert!(error.message().contains("not a decimal integer"), "{error}");
        assert_eq!(report.kv_writes().len(), 2, "written, then discarded");
        assert_eq!(count(&harness, "acme").as_deref(), Some("41"));
        assert!(harness.keys(SEEN).is_empty());
    }

    #[test]
    fn without_its_buckets_the_batch_fails_and_says_how_to_deploy() {
        let report = Harness::new().bucket(COUNTS).run(handle, [order("acme")]);
        let error = report.error().expect("the batch fails");
        assert!(error.message().contains("`--kv seen`"), "{error}");
        assert!(report.kv_writes().is_empty());
    }
}
