//! Delivery rules both backends apply, written once: each backend reads and writes rows with
//! its own SQL and locking, and asks here what the rule decides.
//!
//! - [`DeadLetterChain`]: a queue's dead-letter queue must exist, and following dead-letter
//!   queues from it must never come back to the queue (a message would circle for ever).
//! - [`attempts_spent`]: when a message has had every delivery its queue allows, so that a
//!   retry or an expired lease dead-letters it instead of delivering it again.
//! - [`dead_letter_attributes`]: what a dead-lettered message carries into its dead-letter
//!   queue.
//! - [`redrive_target`] and [`redriven_attributes`]: where a redrive moves a dead-lettered
//!   message, and what it keeps.
//! - [`stale_acks`] and [`dispose`]: what a settle does with each message it names. Only a
//!   message the settling lease still holds is touched, each at most once; everything else is
//!   stale (its lease expired and another consumer has it, or it was settled already). A retry
//!   makes the message visible again after its delay, unless its attempts are spent: then it is
//!   dead-lettered with its error.

use std::collections::HashSet;

use super::{
    ATTR_ATTEMPTS, ATTR_DEAD_LETTER_REASON, ATTR_SOURCE_ID, ATTR_SOURCE_QUEUE, DeadLetter, Error,
    NewMessage, QueueSettings, Result, Retry, is_reserved_attribute,
};

/// A message id as the store writes it; anything else names no message of this store.
pub fn message_id(id: &str) -> Option<i64> {
    id.parse().ok()
}

/// The ids of `ack` that did not acknowledge a message: not held by the lease (`gone` holds the
/// ids the backend's delete under the lease removed), not an id at all, or named again.
pub fn stale_acks(ack: Vec<String>, gone: &HashSet<i64>) -> Vec<String> {
    let mut unclaimed = gone.clone();
    ack.into_iter()
        .filter(|id| !message_id(id).is_some_and(|id| unclaimed.remove(&id)))
        .collect()
}

/// What a settle does to one message it retries or dead-letters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposal {
    /// Back to the queue: visible at `visible_at`, keeping `error` as its last error.
    Retry {
        id: i64,
        visible_at: u64,
        error: String,
    },
    /// To the queue's dead-letter queue with `reason` (or dropped, without one).
    DeadLetter { id: i64, reason: String },
}

/// Decides the retries and dead letters of a settle at `now`: `attempt_of` gives the attempt of
/// a message the settling lease still holds (read by the backend, locked until it commits), and
/// `None` for any other. Retries come first, then dead letters, each id at most once. Returns
/// the disposals in that order and the stale ids.
pub fn dispose(
    retry: Vec<Retry>,
    dead_letter: Vec<DeadLetter>,
    attempt_of: impl Fn(i64) -> Option<u32>,
    settings: &QueueSettings,
    now: u64,
) -> (Vec<Disposal>, Vec<String>) {
    let mut disposals = Vec::with_capacity(retry.len() + dead_letter.len());
    let mut stale = Vec::new();
    let mut claimed = HashSet::new();
    let mut hold = |id: &str| {
        message_id(id)
            .and_then(|n| attempt_of(n).map(|attempt| (n, attempt)))
            .filter(|(n, _)| claimed.insert(*n))
    };
    for Retry {
        id,
        delay_ms,
        error,
    } in retry
    {
        match hold(&id) {
            None => stale.push(id),
            Some((id, attempt)) if attempts_spent(attempt, settings) => {
                disposals.push(Disposal::DeadLetter { id, reason: error })
            }
            Some((id, _)) => disposals.push(Disposal::Retry {
                id,
                visible_at: now.saturating_add(delay_ms),
                error,
            }),
        }
    }
    for DeadLetter { id, reason } in dead_letter {
        match hold(&id) {
            None => stale.push(id),
            Some((id, _)) => disposals.push(Disposal::DeadLetter { id, reason }),
        }
    }
    (disposals, stale)
}

/// The ids whose hold [`dispose`] needs: those of `retry` and `dead_letter` that are ids at all,
/// each once, in order.
pub fn disposal_ids(retry: &[Retry], dead_letter: &[DeadLetter]) -> Vec<i64> {
    let mut seen = HashSet::new();
    retry
        .iter()
        .map(|r| r.id.as_str())
        .chain(dead_letter.iter().map(|d| d.id.as_str()))
        .filter_map(message_id)
        .filter(|id| seen.insert(*id))
        .collect()
}

/// Whether a message delivered `attempt` times (the delivery being settled included) has had
/// every delivery `settings` allow: a retry of it, or its lease expiring, dead-letters it
/// (with its last error, or `lease expired`) instead of delivering it again.
pub fn attempts_spent(attempt: u32, settings: &QueueSettings) -> bool {
    attempt >= settings.max_attempts
}

/// The attributes of message `id` of `queue` as it moves to the dead-letter queue: the
/// producer's own attributes (Sluice's reserved ones dropped: a message dead-lettered twice
/// carries only its last move), then why, after how many deliveries, and from where.
pub fn dead_letter_attributes(
    mut attributes: Vec<(String, String)>,
    queue: &str,
    id: i64,
    attempt: u32,
    reason: &str,
) -> Vec<(String, String)> {
    attributes.retain(|(name, _)| !is_reserved_attribute(name));
    attributes.push((ATTR_DEAD_LETTER_REASON.into(), reason.to_owned()));
    attributes.push((ATTR_ATTEMPTS.into(), attempt.to_string()));
    attributes.push((ATTR_SOURCE_QUEUE.into(), queue.to_owned()));
    attributes.push((ATTR_SOURCE_ID.into(), id.to_string()));
    attributes
}

/// Where a redrive moves a dead-lettered message: to `to` when given, else back to the queue
/// it came from. `None` leaves it in the dead-letter queue: its source is unknown, or the
/// target is the dead-letter queue itself.
pub fn redrive_target(dlq: &str, to: Option<&str>, source: Option<String>) -> Option<String> {
    to.map(str::to_owned)
        .or(source)
        .filter(|target| target != dlq)
}

/// The attributes a redriven message starts again with: the producer's own, without what
/// Sluice added when it dead-lettered it.
pub fn redriven_attributes(mut attributes: Vec<(String, String)>) -> Vec<(String, String)> {
    attributes.retain(|(name, _)| !is_reserved_attribute(name));
    attributes
}

/// How many dead-letter queues one chain may walk through; existing chains never loop (this
/// rule guards every change), so the bound only guards a database edited by hand.
const MAX_CHAIN: usize = 10_000;

/// The check of a queue's dead-letter queue, walked one lookup at a time so that each backend
/// reads "the dead-letter queue of X" with its own statement inside its own transaction:
///
/// ```text
/// if let Some(mut chain) = DeadLetterChain::of(queue, settings) {
///     if !exists(chain.dead_letter_queue()) { return Err(chain.missing()) }
///     while let Some(next) = chain.next() { chain.found(dead_letter_queue_of(next))? }
/// }
/// ```
#[derive(Debug)]
pub struct DeadLetterChain {
    /// The queue being given a dead-letter queue, then each queue the walk has reached.
    chain: Vec<String>,
    done: bool,
}

impl DeadLetterChain {
    /// The walk for `queue` with `settings`; `None` when the settings name no dead-letter queue
    /// (nothing to check).
    pub fn of(queue: &str, settings: &QueueSettings) -> Option<DeadLetterChain> {
        let dlq = settings.dead_letter_queue.as_ref()?;
        Some(DeadLetterChain {
            chain: vec![queue.to_owned(), dlq.clone()],
            done: false,
        })
    }

    /// The dead-letter queue the settings name.
    pub fn dead_letter_queue(&self) -> &str {
        &self.chain[1]
    }

    /// The refusal of a dead-letter queue that does not exist.
    pub fn missing(&self) -> Error {
        Error::InvalidSettings(format!(
            "dead_letter_queue `{}` does not exist; create it first",
            self.dead_letter_queue()
        ))
    }

    /// The queue whose dead-letter queue the backend should read next; `None` once the walk has
    /// reached a queue without one (the chain is fine).
    pub fn next(&self) -> Option<&str> {
        match self.done || self.chain.len() > MAX_CHAIN {
            true => None,
            false => self.chain.last().map(String::as_str),
        }
    }

    /// What the backend read for [`DeadLetterChain::next`]: its dead-letter queue, if any.
    /// Fails when the chain comes back to the queue being changed.
    pub fn found(&mut self, dead_letter_queue: Option<String>) -> Result<()> {
        let Some(after) = dead_letter_queue else {
            self.done = true;
            return Ok(());
        };
        self.chain.push(after);
        if self.chain.last() == self.chain.first() {
            return Err(Error::InvalidSettings(format!(
                "dead_letter_queue `{}` would form a dead-letter cycle ({}); a chain of \
                 dead-letter queues must end in a queue without one",
                self.dead_letter_queue(),
                self.chain.join(" → ")
            )));
        }
        Ok(())
    }
}

/// Messages grouped by their queue or topic, in first-seen order, each group in its order: a
/// settle's sends and publishes, so each target is written once.
pub fn by_target(list: Vec<(String, NewMessage)>) -> Vec<(String, Vec<NewMessage>)> {
    let mut grouped: Vec<(String, Vec<NewMessage>)> = Vec::new();
    for (target, message) in list {
        match grouped.iter_mut().find(|(t, _)| *t == target) {
            Some((_, messages)) => messages.push(message),
            None => grouped.push((target, vec![message])),
        }
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dlq: Option<&str>) -> QueueSettings {
        QueueSettings {
            dead_letter_queue: dlq.map(str::to_owned),
            ..QueueSettings::default()
        }
    }

    /// Walks `queue`'s chain through `links` (queue → its dead-letter queue).
    fn walk(queue: &str, dlq: &str, links: &[(&str, &str)]) -> Result<()> {
        let mut chain = DeadLetterChain::of(queue, &settings(Some(dlq))).unwrap();
        while let Some(next) = chain.next() {
            let after = links
                .iter()
                .find(|(from, _)| *from == next)
                .map(|(_, to)| (*to).to_owned());
            chain.found(after)?;
        }
        Ok(())
    }

    fn retry(id: &str, delay_ms: u64) -> Retry {
        Retry {
            id: id.to_owned(),
            delay_ms,
            error: format!("e{id}"),
        }
    }

    fn dead(id: &str) -> DeadLetter {
        DeadLetter {
            id: id.to_owned(),
            reason: format!("r{id}"),
        }
    }

    #[test]
    fn a_settle_disposes_of_each_held_message_once_and_the_rest_is_stale() {
        let settings = QueueSettings {
            max_attempts: 3,
            ..QueueSettings::default()
        };
        // 1 and 2 held (attempts 1 and 3), 3 and 4 held too, 9 not held.
        let held = |id: i64| match id {
            1 | 3 | 4 => Some(1),
            2 => Some(3),
            _ => None,
        };
        let (disposals, stale) = dispose(
            vec![
                retry("1", 500),
                retry("2", 500),
                retry("9", 0),
                retry("x", 0),
            ],
            vec![dead("3"), dead("1"), dead("4"), dead("4")],
            held,
            &settings,
            1_000,
        );
        assert_eq!(
            disposals,
            [
                Disposal::Retry {
                    id: 1,
                    visible_at: 1_500,
                    error: "e1".into()
                },
                // Its third delivery: spent, dead-lettered with the retry's error.
                Disposal::DeadLetter {
                    id: 2,
                    reason: "e2".into()
                },
                Disposal::DeadLetter {
                    id: 3,
                    reason: "r3".into()
                },
                Disposal::DeadLetter {
                    id: 4,
                    reason: "r4".into()
                },
            ]
        );
        assert_eq!(stale, ["9", "x", "1", "4"]);
        assert_eq!(
            disposal_ids(&[retry("1", 0), retry("x", 0)], &[dead("1"), dead("2")]),
            [1, 2]
        );
    }

    #[test]
    fn acks_not_deleted_under_the_lease_are_stale() {
        let gone: HashSet<i64> = [1, 2].into();
        let ack = ["1", "2", "2", "3", "nope"].map(String::from).to_vec();
        assert_eq!(stale_acks(ack, &gone), ["2", "3", "nope"]);
    }

    #[test]
    fn the_last_allowed_delivery_spends_the_attempts() {
        let three = QueueSettings {
            max_attempts: 3,
            ..QueueSettings::default()
        };
        assert!(!attempts_spent(2, &three));
        assert!(attempts_spent(3, &three));
    }

    #[test]
    fn no_dead_letter_queue_needs_no_walk() {
        assert!(DeadLetterChain::of("q", &settings(None)).is_none());
    }

    #[test]
    fn a_chain_that_ends_is_fine_and_one_that_loops_is_refused() {
        assert!(walk("a", "b", &[("b", "c")]).is_ok());
        match walk("a", "b", &[("b", "c"), ("c", "a")]) {
            Err(Error::InvalidSettings(message)) => {
                assert!(message.contains("(a → b → c → a)"), "{message}")
            }
            other => panic!("a cycle was accepted: {other:?}"),
        }
        // Through a chain already in place: a → b, where b → c → a exists.
        assert!(walk("a", "b", &[("b", "c"), ("c", "a")]).is_err());
    }

    #[test]
    fn a_missing_queue_is_named() {
        let chain = DeadLetterChain::of("a", &settings(Some("gone"))).unwrap();
        assert!(
            chain
                .missing()
                .to_string()
                .contains("`gone` does not exist")
        );
    }

    #[test]
    fn a_redrive_goes_to_the_named_queue_or_back_to_the_source_never_to_the_dlq() {
        assert_eq!(
            redrive_target("dlq", Some("other"), Some("src".into())),
            Some("other".into())
        );
        assert_eq!(
            redrive_target("dlq", None, Some("src".into())),
            Some("src".into())
        );
        assert_eq!(
            redrive_target("dlq", None, None),
            None,
            "source unknown: stays"
        );
        assert_eq!(
            redrive_target("dlq", Some("dlq"), None),
            None,
            "not into itself"
        );
        assert_eq!(redrive_target("dlq", None, Some("dlq".into())), None);
    }

    #[test]
    fn a_redriven_message_keeps_only_the_producers_attributes() {
        let moved =
            dead_letter_attributes(vec![("kind".into(), "order".into())], "q", 7, 3, "boom");
        assert_eq!(
            redriven_attributes(moved),
            [("kind".to_owned(), "order".to_owned())]
        );
    }
}
