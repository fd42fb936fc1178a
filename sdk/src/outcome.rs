//! What a handler returns for a batch that did not fail as a whole: [`Outcome`], the messages it
//! retries or dead-letters, and implicitly the ones it acknowledges.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use crate::Message;

/// The per-message result of a batch: every message not marked here is acknowledged.
///
/// Start from [`Outcome::ack_all`] (or `Outcome::default()`) and mark the messages that failed.
/// Marking the same message twice keeps the last mark.
///
/// ```
/// use std::time::Duration;
/// use sluice_sdk::{testing, Batch, Error, Outcome};
///
/// fn handle(batch: Batch) -> Result<Outcome, Error> {
///     let mut outcome = Outcome::ack_all();
///     for msg in &batch {
///         match msg.body() {
///             b"later" => outcome.retry_after(msg, Duration::from_secs(30)),
///             b"bad" => outcome.dead_letter(msg, "cannot be processed"),
///             _ => &mut outcome,
///         };
///     }
///     Ok(outcome)
/// }
///
/// let report = testing::run(handle, [testing::message("ok"), testing::message("later"), testing::message("bad")]);
/// assert_eq!(report.acked(), ["msg-1"]);
/// assert_eq!(report.failures().len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    failures: Vec<Failure>,
}

/// One message of the batch that was not acknowledged, and what to do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The failed message's id.
    pub id: String,
    /// What the host should do with it.
    pub disposition: Disposition,
}

/// What to do with a message the handler could not process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Deliver it again later: after this delay, or after the queue's backoff when `None`. Once the
    /// queue's max attempts are spent, the host dead-letters it instead. Delays are sent in whole
    /// milliseconds (capped at `u32::MAX`).
    Retry(Option<Duration>),
    /// Give up on it now: move it to the queue's dead-letter queue with this reason.
    DeadLetter(String),
}

impl Outcome {
    /// Acknowledges every message of the batch (the same as `Outcome::default()`).
    ///
    /// ```
    /// assert!(sluice_sdk::Outcome::ack_all().is_ack_all());
    /// ```
    pub fn ack_all() -> Self {
        Outcome::default()
    }

    /// Retries `msg` after the queue's backoff.
    ///
    /// ```
    /// # use sluice_sdk::{testing, Outcome, Disposition};
    /// # let msg = testing::message("x").build();
    /// let mut outcome = Outcome::ack_all();
    /// outcome.retry(&msg);
    /// assert_eq!(outcome.failures()[0].disposition, Disposition::Retry(None));
    /// ```
    pub fn retry(&mut self, msg: &Message) -> &mut Self {
        self.mark(msg, Disposition::Retry(None))
    }

    /// Retries `msg` after `delay` instead of the queue's backoff.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sluice_sdk::{testing, Outcome, Disposition};
    /// # let msg = testing::message("x").build();
    /// let mut outcome = Outcome::ack_all();
    /// outcome.retry_after(&msg, Duration::from_secs(5));
    /// assert_eq!(outcome.failures()[0].disposition, Disposition::Retry(Some(Duration::from_secs(5))));
    /// ```
    pub fn retry_after(&mut self, msg: &Message, delay: Duration) -> &mut Self {
        self.mark(msg, Disposition::Retry(Some(delay)))
    }

    /// Moves `msg` to the queue's dead-letter queue now, with `reason`.
    ///
    /// ```
    /// # use sluice_sdk::{testing, Outcome, Disposition};
    /// # let msg = testing::message("x").build();
    /// let mut outcome = Outcome::ack_all();
    /// outcome.dead_letter(&msg, "unknown customer");
    /// assert_eq!(outcome.failures()[0].disposition, Disposition::DeadLetter("unknown customer".into()));
    /// ```
    pub fn dead_letter(&mut self, msg: &Message, reason: impl fmt::Display) -> &mut Self {
        self.mark(msg, Disposition::DeadLetter(reason.to_string()))
    }

    /// The messages marked so far, in the order they were marked.
    ///
    /// ```
    /// assert!(sluice_sdk::Outcome::ack_all().failures().is_empty());
    /// ```
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// Whether no message is marked, i.e. the whole batch is acknowledged.
    ///
    /// ```
    /// # use sluice_sdk::{testing, Outcome};
    /// # let msg = testing::message("x").build();
    /// let mut outcome = Outcome::ack_all();
    /// assert!(outcome.is_ack_all());
    /// outcome.retry(&msg);
    /// assert!(!outcome.is_ack_all());
    /// ```
    pub fn is_ack_all(&self) -> bool {
        self.failures.is_empty()
    }

    fn mark(&mut self, msg: &Message, disposition: Disposition) -> &mut Self {
        self.failures.push(Failure {
            id: msg.id().to_owned(),
            disposition,
        });
        self
    }

    /// The failures to report, one per message: when a message was marked more than once, the
    /// last mark wins (the host expects each id at most once).
    pub(crate) fn into_failures(self) -> Vec<Failure> {
        let mut failures = self.failures;
        if failures.len() > 1 {
            // A BTreeSet, not a HashSet: its random seed would make every component import wasi:random.
            let mut seen = BTreeSet::new();
            failures.reverse();
            failures.retain(|f| seen.insert(f.id.clone()));
            failures.reverse();
        }
        failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn last_mark_wins() {
        let a = testing::message("a").id("a").build();
        let b = testing::message("b").id("b").build();
        let mut outcome = Outcome::ack_all();
        outcome.retry(&a).dead_letter(&b, "x").dead_letter(&a, "y");
        let failures = outcome.into_failures();
        assert_eq!(
            failures,
            [
                Failure {
                    id: "b".into(),
                    disposition: Disposition::DeadLetter("x".into())
                },
                Failure {
                    id: "a".into(),
                    disposition: Disposition::DeadLetter("y".into())
                },
            ]
        );
    }
}
