//! Prints every message of the batch to stdout (captured by the host as the invocation's log)
//! and acknowledges them all.

use sluice_sdk::{Batch, Error, Message, Outcome};

fn handle(batch: Batch) -> Result<Outcome, Error> {
    for msg in &batch {
        println!("{}", describe(msg));
    }
    Ok(Outcome::ack_all())
}

sluice_sdk::export_handler!(handle);

/// One log line: id, queue, attempt, attributes and the body as text (lossily, for binary).
fn describe(msg: &Message) -> String {
    let attributes: Vec<String> = msg.attributes().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "message {} from {} (attempt {}) [{}]: {}",
        msg.id(),
        msg.queue(),
        msg.attempt(),
        attributes.join(", "),
        String::from_utf8_lossy(msg.body()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::testing;

    #[test]
    fn describes_a_message() {
        let msg = testing::message("hello")
            .id("m-1")
            .queue("events")
            .attempt(2)
            .attribute("tenant", "acme")
            .attribute("source", "web")
            .build();
        assert_eq!(
            describe(&msg),
            "message m-1 from events (attempt 2) [tenant=acme, source=web]: hello"
        );
    }

    #[test]
    fn binary_bodies_are_printed_lossily() {
        let msg = testing::message(vec![b'a', 0xff]).build();
        assert!(describe(&msg).ends_with("[]: a\u{fffd}"));
    }

    #[test]
    fn acknowledges_everything_and_sends_nothing() {
        let report = testing::run(handle, [testing::message("a"), testing::message("b")]);
        assert_eq!(report.acked(), ["msg-1", "msg-2"]);
        assert!(report.sent().is_empty());
    }
}
