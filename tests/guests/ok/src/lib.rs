//! The well-behaved handler: echoes every body to stdout, forwards one message per input to the
//! queue named by the first message's `to` attribute (when present) with attributes `from` (the
//! input's id) and `attempt` (its delivery count, so tests can see redeliveries), and
//! acknowledges the batch.
//! A message with attribute `fail` is reported as failed: `fail=retry` or `fail=retry:MS` retries
//! it, any other value dead-letters it with that value as the reason.
//!
//! Built against `sluice:queue@0.1.0` on purpose (see `outbox2` for 0.2.0): it proves that
//! components built before 0.2.0 keep running unchanged.

wit_bindgen::generate!({ world: "handler", path: "../../../wit/0.1.0" });

use sluice::queue::outbox;
use sluice::queue::types::{Disposition, Outgoing};

struct Echo;

impl Guest for Echo {
    fn handle(batch: Vec<Message>) -> Result<Vec<ItemFailure>, String> {
        let to = batch.first().and_then(|m| attr(m, "to")).map(str::to_owned);
        let mut failures = Vec::new();
        for message in &batch {
            println!("{}", String::from_utf8_lossy(&message.body));
            if let Some(queue) = &to {
                outbox::send(&Outgoing {
                    queue: queue.clone(),
                    body: message.body.clone(),
                    attributes: vec![
                        ("from".into(), message.id.clone()),
                        ("attempt".into(), message.attempt.to_string()),
                    ],
                    delay_ms: 0,
                })
                .map_err(|reason| format!("send to `{queue}` failed: {reason}"))?;
            }
            if let Some(how) = attr(message, "fail") {
                let disposition = match how.strip_prefix("retry") {
                    Some(rest) => {
                        Disposition::Retry(rest.strip_prefix(':').and_then(|ms| ms.parse().ok()))
                    }
                    None => Disposition::DeadLetter(how.to_owned()),
                };
                failures.push(ItemFailure {
                    id: message.id.clone(),
                    disposition,
                });
            }
        }
        Ok(failures)
    }
}

fn attr<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .attributes
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

export!(Echo);
