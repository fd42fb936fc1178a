//! Pull consumers: clients outside WebAssembly (the HTTP pull API, the SQS endpoint) lease
//! messages, hold them by receipt, and settle them by receipt, under the same delivery contract
//! as triggers. A receipt names one message under one lease of one queue; settling with a
//! receipt whose lease was lost (it expired and the message was leased again, or it was settled
//! already) changes nothing and is reported per receipt. Long polling waits on the queue's
//! wake-up (an enqueue, a retry coming due, a lease expiring), never in a sleep loop.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::dispatch::decide::backoff_delay_ms;
use crate::store::{self, DeadLetter, Message, NewReply, Retry, Settlement, Store};

/// The longest a receive may wait for messages (SQS's limit too).
pub const MAX_WAIT: Duration = Duration::from_secs(20);

/// The longest a pull consumer may hold a message before it is delivered again (SQS: 12 h).
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);

/// The most messages one receive leases.
pub const MAX_RECEIVE: usize = 1_000;

/// The most receipts one settle or extend names.
pub const MAX_RECEIPTS: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(
        "queue `{queue}` is consumed by function `{function}`'s trigger; a queue has one kind of \
         consumer at a time: delete the trigger (`sluice functions untrigger {function}`) to \
         pull from it"
    )]
    HasTrigger { queue: String, function: String },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A message handed to a pull consumer, with the receipt that settles it.
#[derive(Debug, Clone)]
pub struct Received {
    pub receipt: String,
    pub message: Message,
}

/// What a receipt names: a message under a lease of a queue, and which delivery it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub queue: String,
    pub lease: i64,
    pub id: String,
    pub attempt: u32,
}

impl Receipt {
    /// The opaque text clients hold.
    pub fn encode(&self) -> String {
        let text = format!(
            "1 {} {} {} {}",
            self.lease, self.attempt, self.queue, self.id
        );
        URL_SAFE_NO_PAD.encode(text)
    }

    /// Reads a receipt given for `queue`; a receipt that is not one, or is another queue's,
    /// is refused with what was wrong.
    pub fn decode(text: &str, queue: &str) -> Result<Receipt, String> {
        let malformed = || format!("`{text}` is not a receipt this server gave out");
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| malformed())?;
        let text_form = String::from_utf8(bytes).map_err(|_| malformed())?;
        let mut parts = text_form.splitn(5, ' ');
        let (Some("1"), Some(lease), Some(attempt), Some(owner), Some(id)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(malformed());
        };
        let receipt = Receipt {
            lease: lease.parse().map_err(|_| malformed())?,
            attempt: attempt.parse().map_err(|_| malformed())?,
            queue: owner.to_owned(),
            id: id.to_owned(),
        };
        if receipt.queue != queue {
            return Err(format!(
                "this receipt is for queue `{}`, not `{queue}`",
                receipt.queue
            ));
        }
        Ok(receipt)
    }
}

/// What a receive asks for.
#[derive(Debug, Clone, Copy)]
pub struct ReceiveOptions {
    pub max_messages: usize,
    /// How long the messages stay leased; `None`: the queue's visibility timeout.
    pub visibility: Option<Duration>,
    /// How long to wait for a first message when none is visible.
    pub wait: Duration,
}

/// Refuses pulling from a queue a trigger consumes (one kind of consumer per queue).
pub async fn check_no_trigger(store: &Store, queue: &str) -> Result<()> {
    check_exists(store, queue).await?;
    if let Some(function) = store.consumer_of(queue).await? {
        return Err(Error::HasTrigger {
            queue: queue.to_owned(),
            function,
        });
    }
    Ok(())
}

/// Leases up to `max_messages` of `queue`, waiting up to `wait` for the first to arrive. An
/// empty answer means nothing became visible in time.
pub async fn receive(store: &Store, queue: &str, options: ReceiveOptions) -> Result<Vec<Received>> {
    if !(1..=MAX_RECEIVE).contains(&options.max_messages) {
        return Err(Error::Invalid(format!(
            "`max_messages` must be between 1 and {MAX_RECEIVE}"
        )));
    }
    if options.visibility.is_some_and(|v| v > MAX_VISIBILITY) {
        return Err(Error::Invalid(format!(
            "the visibility timeout must be at most {} ms (12 hours)",
            MAX_VISIBILITY.as_millis()
        )));
    }
    if options.wait > MAX_WAIT {
        return Err(Error::Invalid(format!(
            "the wait must be at most {} ms",
            MAX_WAIT.as_millis()
        )));
    }
    check_no_trigger(store, queue).await?;
    let deadline = tokio::time::Instant::now() + options.wait;
    let notify = store.notifier(queue);
    loop {
        // Registered before looking, so an enqueue between the look and the wait still wakes.
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(lease) = store
            .lease(queue, options.max_messages, options.visibility)
            .await?
        {
            return Ok(lease
                .messages
                .into_iter()
                .map(|message| Received {
                    receipt: Receipt {
                        queue: lease.queue.clone(),
                        lease: lease.id,
                        id: message.id.clone(),
                        attempt: message.attempt,
                    }
                    .encode(),
                    message,
                })
                .collect());
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(Vec::new());
        }
        // A delayed or retried message, or an expired lease, comes due without an enqueue.
        let due = store
            .next_visible_at_ms(queue)
            .await?
            .map(|at| now + Duration::from_millis(at.saturating_sub(store.now_ms())));
        let wake = due.map_or(deadline, |due| due.min(deadline));
        let _parked = Parked::on(queue);
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep_until(wake) => {}
        }
    }
}

/// A receive parked waiting for messages, counted in the gauge `sluice_pull_waiting{queue}`
/// for as long as it waits (dropped when it wakes, or when its client goes away).
struct Parked(String);

impl Parked {
    fn on(queue: &str) -> Parked {
        metrics::gauge!("sluice_pull_waiting", "queue" => queue.to_owned()).increment(1.0);
        Parked(queue.to_owned())
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        metrics::gauge!("sluice_pull_waiting", "queue" => self.0.clone()).decrement(1.0);
    }
}

/// What to do with the messages named by receipts.
#[derive(Debug, Clone)]
pub enum Action {
    /// Done with it: delete it, committing the replies given by receipt (request-reply) with
    /// the acks.
    Ack { replies: HashMap<String, ReplyBody> },
    /// Deliver it again after `delay` (default: the queue's backoff for its attempt); after
    /// its last attempt it is dead-lettered instead, like a trigger's retry.
    Retry { delay: Option<Duration> },
    /// Move it to the queue's dead-letter queue with a reason (dropped without one).
    DeadLetter { reason: String },
}

impl Action {
    /// A plain ack, with no replies.
    pub fn ack() -> Action {
        Action::Ack {
            replies: HashMap::new(),
        }
    }
}

/// The body and attributes of a pull consumer's reply to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyBody {
    pub body: Vec<u8>,
    pub attributes: Vec<(String, String)>,
}

/// How one receipt fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Its lease was lost (it expired and the message was leased again, or it was settled or
    /// deleted already): nothing changed.
    Stale,
    /// Not a receipt of this queue: nothing changed.
    Invalid(String),
}

/// Applies `action` to the messages named by `receipts`, one transaction per lease among
/// them; answers one outcome per receipt, in order.
pub async fn settle(
    store: &Store,
    queue: &str,
    receipts: &[String],
    action: &Action,
) -> Result<Vec<Outcome>> {
    check_exists(store, queue).await?;
    let (mut outcomes, by_lease) = group(queue, receipts)?;
    let backoff = match action {
        Action::Retry { delay: None } => Some(store.queue_settings(queue).await?.backoff),
        _ => None,
    };
    for (lease, held) in by_lease {
        let mut settlement = Settlement::default();
        for (index, receipt) in &held {
            let id = receipt.id.clone();
            match action {
                Action::Ack { replies } => {
                    if let Some(reply) = replies.get(&receipts[*index]) {
                        settlement.replies.push(NewReply {
                            message_id: id.clone(),
                            body: reply.body.clone(),
                            attributes: reply.attributes.clone(),
                        });
                    }
                    settlement.ack.push(id)
                }
                Action::Retry { delay } => {
                    // `backoff` is read exactly when no delay was given.
                    let delay_ms = match (delay, &backoff) {
                        (Some(delay), _) => u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        (None, backoff) => backoff.as_ref().map_or(0, |b| {
                            backoff_delay_ms(b, receipt.attempt, &mut rand::rng())
                        }),
                    };
                    settlement.retry.push(Retry {
                        id,
                        delay_ms,
                        error: "the pull consumer asked for a retry".to_owned(),
                    });
                }
                Action::DeadLetter { reason } => settlement.dead_letter.push(DeadLetter {
                    id,
                    reason: reason.clone(),
                }),
            }
        }
        let settled = store.settle_held(queue, lease, settlement).await?;
        for (index, receipt) in held {
            outcomes[index] = Some(if settled.stale.contains(&receipt.id) {
                Outcome::Stale
            } else {
                Outcome::Done
            });
        }
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.unwrap_or(Outcome::Stale))
        .collect())
}

/// Keeps the messages named by `receipts` leased for `visibility` from now (a heartbeat);
/// answers one outcome per receipt, in order.
pub async fn extend(
    store: &Store,
    queue: &str,
    receipts: &[String],
    visibility: Duration,
) -> Result<Vec<Outcome>> {
    if visibility > MAX_VISIBILITY {
        return Err(Error::Invalid(format!(
            "`visibility_timeout_ms` must be at most {}",
            MAX_VISIBILITY.as_millis()
        )));
    }
    check_exists(store, queue).await?;
    let (mut outcomes, by_lease) = group(queue, receipts)?;
    for (lease, held) in by_lease {
        let ids: Vec<String> = held.iter().map(|(_, r)| r.id.clone()).collect();
        let extended = store.extend_held(queue, lease, ids, visibility).await?;
        if extended as usize == held.len() {
            for (index, _) in held {
                outcomes[index] = Some(Outcome::Done);
            }
            continue;
        }
        // Some were lost: extending is idempotent, so ask one by one which are still held.
        for (index, receipt) in held {
            let one = store
                .extend_held(queue, lease, vec![receipt.id], visibility)
                .await?;
            outcomes[index] = Some(if one == 1 {
                Outcome::Done
            } else {
                Outcome::Stale
            });
        }
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.unwrap_or(Outcome::Stale))
        .collect())
}

async fn check_exists(store: &Store, queue: &str) -> Result<()> {
    if store.confirm_queue(queue).await? {
        Ok(())
    } else {
        Err(store::Error::QueueNotFound(queue.to_owned()).into())
    }
}

/// Decodes `receipts` and groups the valid ones by lease (with their position); invalid
/// receipts already have their outcome.
#[allow(clippy::type_complexity)]
fn group(
    queue: &str,
    receipts: &[String],
) -> Result<(Vec<Option<Outcome>>, BTreeMap<i64, Vec<(usize, Receipt)>>)> {
    if receipts.is_empty() {
        return Err(Error::Invalid(
            "`receipts` is empty: give at least one".into(),
        ));
    }
    if receipts.len() > MAX_RECEIPTS {
        return Err(Error::Invalid(format!(
            "at most {MAX_RECEIPTS} receipts per request"
        )));
    }
    let mut outcomes = vec![None; receipts.len()];
    let mut by_lease: BTreeMap<i64, Vec<(usize, Receipt)>> = BTreeMap::new();
    for (index, text) in receipts.iter().enumerate() {
        match Receipt::decode(text, queue) {
            Ok(receipt) => by_lease
                .entry(receipt.lease)
                .or_default()
                .push((index, receipt)),
            Err(why) => outcomes[index] = Some(Outcome::Invalid(why)),
        }
    }
    Ok((outcomes, by_lease))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_round_trip_and_refuse_other_queues_and_junk() {
        let receipt = Receipt {
            queue: "orders".into(),
            lease: 42,
            id: "1007".into(),
            attempt: 3,
        };
        let text = receipt.encode();
        assert_eq!(Receipt::decode(&text, "orders"), Ok(receipt));
        let other = Receipt::decode(&text, "billing").unwrap_err();
        assert!(other.contains("`orders`"), "{other}");
        for junk in ["", "abc", "!!!", &URL_SAFE_NO_PAD.encode("1 x 1 orders 5")] {
            let err = Receipt::decode(junk, "orders").unwrap_err();
            assert!(err.contains("not a receipt"), "{junk}: {err}");
        }
    }
}
