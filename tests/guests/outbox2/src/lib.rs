//! A `sluice:queue@0.2.0` handler that does with each message what its attributes say, to test
//! the 0.2.0 outbox: `send=QUEUE` sends the body there (with `priority=N` and `group=KEY` when
//! given), `publish=TOPIC` publishes the body there with attribute `from` (the message's id), and
//! `reply=ID,ID,...` replies to each of those ids (`self`: the message's own id) with the body and
//! attribute `to` (the id answered). It prints each message's id, priority and group, and fails
//! the batch with the outbox's reason when a call is refused.
//!
//! Built against `sluice:queue@0.2.0` (`wit/0.2.0`) on purpose, as `ok` is against 0.1.0: it
//! proves that 0.2.0 components keep running beside 0.3.0 ones.

wit_bindgen::generate!({ world: "handler", path: "../../../wit/0.2.0" });

use sluice::queue::outbox;
use sluice::queue::types::Outgoing;

struct Outbox2;

impl Guest for Outbox2 {
    fn handle(batch: Vec<Message>) -> Result<Vec<ItemFailure>, String> {
        for message in &batch {
            println!(
                "{} priority={} group={}",
                message.id,
                message.priority,
                message.group.as_deref().unwrap_or("-")
            );
            if let Some(queue) = attr(message, "send") {
                let priority = match attr(message, "priority") {
                    Some(p) => Some(p.parse().map_err(|e| format!("priority `{p}`: {e}"))?),
                    None => None,
                };
                outbox::send(&Outgoing {
                    queue: queue.to_owned(),
                    body: message.body.clone(),
                    attributes: Vec::new(),
                    delay_ms: 0,
                    priority,
                    group: attr(message, "group").map(str::to_owned),
                })
                .map_err(|reason| format!("send to `{queue}` failed: {reason}"))?;
            }
            if let Some(topic) = attr(message, "publish") {
                outbox::publish(topic, &message.body, &[("from".into(), message.id.clone())])
                    .map_err(|reason| format!("publish to `{topic}` failed: {reason}"))?;
            }
            if let Some(ids) = attr(message, "reply") {
                for id in ids.split(',') {
                    let id = if id == "self" {
                        message.id.as_str()
                    } else {
                        id
                    };
                    outbox::reply(id, &message.body, &[("to".into(), id.to_owned())])
                        .map_err(|reason| format!("reply to `{id}` failed: {reason}"))?;
                }
            }
        }
        Ok(Vec::new())
    }
}

fn attr<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .attributes
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

export!(Outbox2);
