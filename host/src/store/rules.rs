//! Delivery rules both backends apply, written once: each backend reads and writes rows with
//! its own SQL and locking, and asks here what the rule decides.
//!
//! - [`DeadLetterChain`]: a queue's dead-letter queue must exist, and following dead-letter
//!   queues from it must never come back to the queue (a message would circle for ever).
//! - [`attempts_spent`]: when a message has had every delivery its queue allows, so that a
//!   retry or an expired lease dead-letters it instead of delivering it again.
//! - [`dead_letter_attributes`]: what a dead-lettered message carries into its dead-letter
//!   queue.

use super::{
    ATTR_ATTEMPTS, ATTR_DEAD_LETTER_REASON, ATTR_SOURCE_ID, ATTR_SOURCE_QUEUE, Error,
    QueueSettings, Result, is_reserved_attribute,
};

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
}
