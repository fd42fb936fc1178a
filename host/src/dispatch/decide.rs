//! The settle decision: from a batch and how its invocation ended, what to acknowledge, retry
//! (and after how long), dead-letter, and send. Pure functions, tested beside them.

use std::collections::HashMap;

use rand::Rng;

use crate::executor::{Disposition, Invocation, Outcome};
use crate::functions::failure_name;
use crate::store::{
    Backoff, DEFAULT_PRIORITY, DeadLetter, Message, NewMessage, NewReply, Retry, Settlement,
};

/// The queue's backoff for a message whose delivery number `attempt` failed, with jitter.
pub fn backoff_delay_ms(backoff: &Backoff, attempt: u32, rng: &mut impl Rng) -> u64 {
    backoff.delay_ms(attempt, rng.random::<f64>())
}

/// How long a trigger waits before leasing again after `failures` failed invocations in a row:
/// none after a success, then 100 ms doubling up to 10 s. A function that traps, loops or runs
/// out of memory on every batch so gets a sliver of the CPU instead of starving healthy
/// triggers (Lambda scales an SQS event source down on errors for the same reason).
pub fn failure_cooldown(failures: u32) -> std::time::Duration {
    const FIRST_MS: u64 = 100;
    const MAX_MS: u64 = 10_000;
    if failures == 0 {
        return std::time::Duration::ZERO;
    }
    let ms = FIRST_MS
        .saturating_mul(1u64 << failures.saturating_sub(1).min(20))
        .min(MAX_MS);
    std::time::Duration::from_millis(ms)
}

/// Turns an invocation's outcome into the settlement of its batch.
///
/// `ok(failures)` acknowledges everything not listed and commits the sends, publishes and
/// state writes; `err`, a trap, a timeout or running out of memory retries every message and
/// discards them.
pub fn settlement(
    batch: &[Message],
    invocation: Invocation,
    backoff: &Backoff,
    rng: &mut impl Rng,
) -> Settlement {
    let mut settlement = Settlement::default();
    match invocation.outcome {
        Outcome::Ok(failures) => {
            let mut failed: HashMap<&str, &Disposition> = failures
                .iter()
                .map(|f| (f.id.as_str(), &f.disposition))
                .collect();
            for message in batch {
                match failed.remove(message.id.as_str()) {
                    None => settlement.ack.push(message.id.clone()),
                    Some(Disposition::Retry(delay)) => settlement.retry.push(Retry {
                        id: message.id.clone(),
                        delay_ms: delay
                            .map(u64::from)
                            .unwrap_or_else(|| backoff_delay_ms(backoff, message.attempt, rng)),
                        error: "the handler asked for a retry".to_owned(),
                    }),
                    Some(Disposition::DeadLetter(reason)) => {
                        settlement.dead_letter.push(DeadLetter {
                            id: message.id.clone(),
                            reason: reason.clone(),
                        })
                    }
                }
            }
            if !failed.is_empty() {
                tracing::warn!(ids = ?failed.keys().collect::<Vec<_>>(), "handler reported failures for ids not in its batch; ignored");
            }
            settlement.send = invocation
                .sends
                .into_iter()
                .map(|s| {
                    let message = NewMessage {
                        body: s.body,
                        attributes: s.attributes,
                        delay_ms: u64::from(s.delay_ms),
                        dedup_id: None,
                        priority: s.priority.unwrap_or(DEFAULT_PRIORITY),
                        group: s.group,
                    };
                    (s.queue, message)
                })
                .collect();
            settlement.publish = invocation
                .publishes
                .into_iter()
                .map(|p| {
                    let message = NewMessage {
                        body: p.body,
                        attributes: p.attributes,
                        ..NewMessage::default()
                    };
                    (p.topic, message)
                })
                .collect();
            // The store keeps only the replies of the messages this settle acknowledges.
            settlement.replies = invocation
                .replies
                .into_iter()
                .map(|r| NewReply {
                    message_id: r.message_id,
                    body: r.body,
                    attributes: r.attributes,
                })
                .collect();
            settlement.state = invocation.state;
        }
        Outcome::Error(reason) => {
            settlement = retry_all(batch, &format!("handler error: {reason}"), backoff, rng)
        }
        Outcome::Failed { kind, message } => {
            settlement = retry_all(
                batch,
                &format!("{}: {message}", failure_name(kind)),
                backoff,
                rng,
            )
        }
    }
    settlement
}

/// Retries every message of `batch` with the queue's backoff, committing nothing else.
pub fn retry_all(
    batch: &[Message],
    error: &str,
    backoff: &Backoff,
    rng: &mut impl Rng,
) -> Settlement {
    Settlement {
        retry: batch
            .iter()
            .map(|m| Retry {
                id: m.id.clone(),
                delay_ms: backoff_delay_ms(backoff, m.attempt, rng),
                error: error.to_owned(),
            })
            .collect(),
        ..Settlement::default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::executor::{FailureKind, ItemFailure, Outgoing, Publish, Reply};

    fn backoff(jitter: bool) -> Backoff {
        Backoff {
            initial_ms: 100,
            multiplier: 2.0,
            max_ms: 1000,
            jitter,
        }
    }

    fn batch(n: usize) -> Vec<Message> {
        (1..=n)
            .map(|i| Message {
                id: i.to_string(),
                queue: "q".into(),
                body: vec![],
                attributes: vec![],
                attempt: 1,
                enqueued_at_ms: 0,
                priority: crate::store::DEFAULT_PRIORITY,
                group: None,
                first_leased_at_ms: None,
            })
            .collect()
    }

    fn invocation(outcome: Outcome) -> Invocation {
        Invocation {
            outcome,
            logs: String::new(),
            sends: vec![
                Outgoing {
                    queue: "next".into(),
                    body: b"x".to_vec(),
                    attributes: vec![],
                    delay_ms: 5,
                    priority: None,
                    group: None,
                },
                Outgoing {
                    queue: "urgent".into(),
                    body: b"y".to_vec(),
                    attributes: vec![],
                    delay_ms: 0,
                    priority: Some(9),
                    group: Some("customer-7".into()),
                },
            ],
            publishes: vec![Publish {
                topic: "events".into(),
                body: b"z".to_vec(),
                attributes: vec![("kind".into(), "order".into())],
            }],
            replies: vec![Reply {
                message_id: "1".into(),
                body: b"answer".to_vec(),
                attributes: vec![],
            }],
            state: vec![crate::store::StateWrite {
                bucket: "counts".into(),
                key: "n".into(),
                op: crate::store::StateOp::Increment(1),
                expect: None,
            }],
            duration: Duration::ZERO,
        }
    }

    #[test]
    fn jittered_backoff_stays_between_half_and_full_delay() {
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 1..10 {
            let full = backoff_delay_ms(&backoff(false), attempt, &mut rng);
            let jittered = backoff_delay_ms(&backoff(true), attempt, &mut rng);
            assert!(
                jittered >= full / 2 && jittered <= full,
                "{attempt}: {jittered} vs {full}"
            );
        }
    }

    #[test]
    fn failure_cooldown_doubles_from_nothing_to_a_cap() {
        let ms = |n| failure_cooldown(n).as_millis();
        assert_eq!([ms(0), ms(1), ms(2), ms(3)], [0, 100, 200, 400]);
        assert_eq!(ms(8), 10_000);
        assert_eq!(ms(u32::MAX), 10_000);
    }

    #[test]
    fn ok_without_failures_acks_all_and_commits_sends() {
        let mut rng = StdRng::seed_from_u64(0);
        let s = settlement(
            &batch(3),
            invocation(Outcome::Ok(vec![])),
            &backoff(false),
            &mut rng,
        );
        assert_eq!(s.ack, ["1", "2", "3"]);
        assert!(s.retry.is_empty() && s.dead_letter.is_empty());
        assert_eq!(s.send.len(), 2);
        assert_eq!(s.send[0].0, "next");
        assert_eq!(s.send[0].1.delay_ms, 5);
        assert_eq!(
            (s.send[0].1.priority, &s.send[0].1.group),
            (DEFAULT_PRIORITY, &None),
            "no priority: the default"
        );
        assert_eq!(s.send[1].0, "urgent");
        assert_eq!(
            (s.send[1].1.priority, s.send[1].1.group.as_deref()),
            (9, Some("customer-7"))
        );
        assert_eq!(s.publish.len(), 1);
        assert_eq!(s.publish[0].0, "events");
        assert_eq!(s.publish[0].1.body, b"z");
        assert_eq!(s.publish[0].1.attributes, [("kind".into(), "order".into())]);
        assert_eq!(s.replies.len(), 1);
        assert_eq!(
            (
                s.replies[0].message_id.as_str(),
                s.replies[0].body.as_slice()
            ),
            ("1", b"answer".as_slice())
        );
        assert_eq!(s.state.len(), 1, "state commits with the ack");
    }

    #[test]
    fn partial_failure_retries_and_dead_letters_only_the_listed_messages() {
        let mut rng = StdRng::seed_from_u64(0);
        let failures = vec![
            ItemFailure {
                id: "2".into(),
                disposition: Disposition::Retry(Some(42)),
            },
            ItemFailure {
                id: "3".into(),
                disposition: Disposition::Retry(None),
            },
            ItemFailure {
                id: "4".into(),
                disposition: Disposition::DeadLetter("bad".into()),
            },
            ItemFailure {
                id: "99".into(),
                disposition: Disposition::Retry(None),
            },
        ];
        let s = settlement(
            &batch(4),
            invocation(Outcome::Ok(failures)),
            &backoff(false),
            &mut rng,
        );
        assert_eq!(s.ack, ["1"]);
        assert_eq!(s.retry.len(), 2);
        assert_eq!((s.retry[0].id.as_str(), s.retry[0].delay_ms), ("2", 42));
        assert_eq!(
            (s.retry[1].id.as_str(), s.retry[1].delay_ms),
            ("3", 100),
            "queue backoff"
        );
        assert_eq!(s.dead_letter.len(), 1);
        assert_eq!(s.dead_letter[0].reason, "bad");
        assert_eq!(s.send.len(), 2, "sends commit with a partial failure");
        assert_eq!(
            s.publish.len(),
            1,
            "publishes commit with a partial failure"
        );
    }

    #[test]
    fn error_and_failures_retry_everything_and_discard_sends() {
        let mut rng = StdRng::seed_from_u64(0);
        for outcome in [
            Outcome::Error("db down".into()),
            Outcome::Failed {
                kind: FailureKind::Timeout,
                message: "took 30 s".into(),
            },
            Outcome::Failed {
                kind: FailureKind::Trap,
                message: "unreachable".into(),
            },
        ] {
            let s = settlement(&batch(3), invocation(outcome), &backoff(false), &mut rng);
            assert!(s.ack.is_empty());
            assert!(s.send.is_empty(), "sends discarded");
            assert!(s.replies.is_empty(), "replies discarded");
            assert!(s.state.is_empty(), "state writes discarded");
            assert!(s.publish.is_empty(), "publishes discarded");
            assert_eq!(s.retry.len(), 3);
            assert!(s.retry.iter().all(|r| r.delay_ms == 100));
        }
        let s = settlement(
            &batch(1),
            invocation(Outcome::Failed {
                kind: FailureKind::OutOfMemory,
                message: "grew past 1 MiB".into(),
            }),
            &backoff(false),
            &mut rng,
        );
        assert!(
            s.retry[0].error.starts_with("out_of_memory"),
            "{}",
            s.retry[0].error
        );
    }
}
