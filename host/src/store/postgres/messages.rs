//! Message operations inside one PostgreSQL transaction: enqueue (with dedup), lease (one
//! `FOR UPDATE SKIP LOCKED` statement), extend, settle (every change guarded by the lease id),
//! redrive, purge and the retention sweep. Each records its counter deltas and wake-ups in the
//! [`Work`] it is given; the caller writes them with the commit.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Statement;

use super::super::codec::{decode_attributes, decode_settings, encode_attributes};
use super::super::rules::{
    Disposal, attempts_spent, dead_letter_attributes, disposal_ids, dispose, message_id,
    redrive_target, redriven_attributes, stale_acks,
};
use super::super::validate;
use super::super::{
    DEFAULT_PRIORITY, Enqueued, Error, Lease, LeaseRequest, MAX_LEASE_MESSAGES, MAX_PRIORITY,
    Message, NewMessage, QueueSettings, REASON_LEASE_EXPIRED, ReasonCounts, ReasonRow, Result,
    Settled, Settlement,
};
use super::marks::{Mark, Marks, START};
use super::{count, int, sql};

/// Additions to one queue's counters (acks record theirs in the ack's own statement).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Counts {
    pub enqueued: i64,
    pub retried: i64,
    pub dead_lettered: i64,
    pub dropped: i64,
    pub expired: i64,
}

/// What a transaction leaves to do at commit: counter deltas, and queues to wake once it has
/// committed (on this host and, through [`super::notify`], on the others).
#[derive(Debug, Default)]
pub struct Work {
    pub now: u64,
    pub counts: HashMap<String, Counts>,
    pub wake: HashSet<String>,
    /// Queues whose lease (and cap slot) a settle freed: they are woken at commit too, unless
    /// the same transaction leased their next batch and so took the freed place again.
    pub freed: HashSet<String>,
    /// Messages whose reply this transaction stored: their waiters on this host wake after
    /// commit (other hosts' by NOTIFY).
    pub replied: Vec<String>,
    /// Queues where a group's next message became deliverable: it may sort before this
    /// host's lease marks, which are forgotten at commit (see [`super::marks`]).
    pub released: HashSet<String>,
    settings: HashMap<String, QueueSettings>,
}

impl Work {
    pub fn new(now: u64) -> Work {
        Work {
            now,
            ..Work::default()
        }
    }

    fn count(&mut self, queue: &str) -> &mut Counts {
        self.counts.entry(queue.to_owned()).or_default()
    }

    /// A queue's settings, read once per transaction.
    pub(super) async fn settings(
        &mut self,
        tx: &impl GenericClient,
        queue: &str,
    ) -> Result<QueueSettings> {
        if let Some(s) = self.settings.get(queue) {
            return Ok(s.clone());
        }
        let settings = read_settings(tx, queue).await?;
        self.remember(queue, settings.clone());
        Ok(settings)
    }

    /// Takes on what another part of the transaction recorded: its counter deltas and the
    /// queues it wakes (see [`enqueue_each`], whose enqueues run at once, each with a [`Work`]
    /// of its own).
    pub fn absorb(&mut self, part: Work) {
        for (queue, c) in part.counts {
            let mine = self.count(&queue);
            mine.enqueued += c.enqueued;
            mine.retried += c.retried;
            mine.dead_lettered += c.dead_lettered;
            mine.dropped += c.dropped;
            mine.expired += c.expired;
        }
        self.wake.extend(part.wake);
        self.freed.extend(part.freed);
        self.replied.extend(part.replied);
        self.released.extend(part.released);
        self.settings.extend(part.settings);
    }

    /// Keeps settings read alongside other statements (see [`read_settings`]) for the rest
    /// of the transaction.
    pub(super) fn remember(&mut self, queue: &str, settings: QueueSettings) {
        self.settings.insert(queue.to_owned(), settings);
    }

    /// Adds the queues whose lease a settle freed to those to wake, and writes the counter
    /// deltas (pipelined, one round trip for all); they take effect at commit.
    pub async fn flush(&mut self, tx: &Transaction<'_>) -> Result<()> {
        let freed = std::mem::take(&mut self.freed);
        self.wake.extend(freed);
        let counts: Vec<(String, Counts)> = self
            .counts
            .drain()
            .filter(|(_, c)| *c != Counts::default())
            .collect();
        if counts.is_empty() {
            return Ok(());
        }
        let add = tx.prepare_cached(sql::ADD_COUNTS).await?;
        let adds = counts.iter().map(|(queue, c)| {
            let add = &add;
            async move {
                tx.execute(
                    add,
                    &[
                        queue,
                        &c.enqueued,
                        &c.retried,
                        &c.dead_lettered,
                        &c.dropped,
                        &c.expired,
                    ],
                )
                .await
            }
        });
        futures::future::try_join_all(adds).await?;
        Ok(())
    }
}

/// A queue's settings, read without a [`Work`] so the read can share a round trip with other
/// statements of the transaction.
pub(super) async fn read_settings(tx: &impl GenericClient, queue: &str) -> Result<QueueSettings> {
    let row = tx
        .query_opt(&tx.prepare_cached(sql::QUEUE_SETTINGS).await?, &[&queue])
        .await?
        .ok_or_else(|| Error::QueueNotFound(queue.to_owned()))?;
    decode_settings(queue, row.get(0))
}

/// A foreign-key violation on `messages.queue`: the queue was deleted meanwhile.
/// A statement adding messages to `queue` added none: the queue was deleted since its settings
/// were read (see [`sql::INSERT_MESSAGES_COUNTED`]).
fn added_to(rows: u64, queue: &str) -> Result<()> {
    match rows {
        0 => Err(Error::QueueNotFound(queue.to_owned())),
        _ => Ok(()),
    }
}

/// The lane a deliverable message of this priority waits in (lane 0 is read first).
fn lane(priority: u8) -> i16 {
    i16::from(MAX_PRIORITY - priority.min(MAX_PRIORITY))
}

/// The lane of messages waiting behind their group's head; no lease reads it.
const HELD_LANE: i16 = 10;

fn first_leased(stored: Option<i64>) -> Option<u64> {
    stored.map(|at| u64::try_from(at).unwrap_or(0))
}

fn priority(stored: i16) -> u8 {
    u8::try_from(stored).unwrap_or(DEFAULT_PRIORITY)
}

/// Locks the listed groups of `queue` until commit (see [`sql::LOCK_GROUPS`]).
async fn lock_groups(tx: &impl GenericClient, queue: &str, groups: &[&str]) -> Result<()> {
    if !groups.is_empty() {
        tx.execute(
            &tx.prepare_cached(sql::LOCK_GROUPS).await?,
            &[&queue, &groups],
        )
        .await?;
    }
    Ok(())
}

/// After messages of `groups` left `queue`: lets each group's new head be delivered. Takes the
/// groups' locks first, so it sees a message another host enqueued behind the one that left.
async fn release_groups<'g>(
    tx: &Transaction<'_>,
    work: &mut Work,
    queue: &str,
    groups: impl IntoIterator<Item = &'g str>,
) -> Result<()> {
    let mut groups: Vec<&str> = groups.into_iter().collect();
    if groups.is_empty() {
        return Ok(());
    }
    groups.sort_unstable();
    groups.dedup();
    lock_groups(tx, queue, &groups).await?;
    let released = tx
        .execute(
            &tx.prepare_cached(sql::RELEASE_GROUP_HEADS).await?,
            &[&queue, &groups],
        )
        .await?;
    if released > 0 {
        work.wake.insert(queue.to_owned());
        work.released.insert(queue.to_owned());
    }
    Ok(())
}

/// The lane of each new message: a message of a group that already has one in the queue (or
/// earlier in this request) waits in the held lane. Locks the groups until commit.
async fn lanes_for(
    tx: &impl GenericClient,
    queue: &str,
    priorities: &[u8],
    groups_of: &[Option<String>],
) -> Result<Vec<i16>> {
    let mut groups: Vec<&str> = groups_of.iter().filter_map(|g| g.as_deref()).collect();
    groups.sort_unstable();
    groups.dedup();
    let mut busy: HashSet<String> = HashSet::new();
    if !groups.is_empty() {
        lock_groups(tx, queue, &groups).await?;
        busy = tx
            .query(
                &tx.prepare_cached(sql::GROUPS_WITH_MESSAGES).await?,
                &[&queue, &groups],
            )
            .await?
            .into_iter()
            .map(|r| r.get(0))
            .collect();
    }
    Ok(priorities
        .iter()
        .zip(groups_of)
        .map(|(&priority, group)| match group {
            Some(group) if !busy.insert(group.clone()) => HELD_LANE,
            _ => lane(priority),
        })
        .collect())
}

/// Enqueues `messages` into `queue` through `tx`: a transaction, or a plain connection when
/// no message has a dedup id or a group (see [`standalone`]). On a plain connection each
/// statement commits on its own; the only one that writes, the insert with its counter delta,
/// is a single statement.
pub async fn enqueue(
    tx: &impl GenericClient,
    work: &mut Work,
    queue: &str,
    messages: Vec<NewMessage>,
) -> Result<Vec<Enqueued>> {
    // Without dedup ids every message is new, so the ids the batch needs are known before the
    // settings are: both are read in one round trip (a batch refused after this leaves a gap
    // in the sequence, as a rolled-back insert does).
    let mut prefetched = None;
    let settings = match work.settings.get(queue) {
        Some(settings) => settings.clone(),
        None if messages.iter().all(|m| m.dedup_id.is_none()) => {
            let (settings, ids) =
                tokio::try_join!(read_settings(tx, queue), next_ids(tx, messages.len()))?;
            work.remember(queue, settings.clone());
            prefetched = Some(ids);
            settings
        }
        None => work.settings(tx, queue).await?,
    };
    validate::messages_fit(queue, &settings, &messages)?;
    if let Some(max_depth) = settings.max_depth {
        let depth: i64 = tx
            .query_one(
                &tx.prepare_cached(sql::DEPTH_UP_TO).await?,
                &[&queue, &int(max_depth)],
            )
            .await?
            .get(0);
        if u64::try_from(depth).unwrap_or(0) + messages.len() as u64 > max_depth {
            return Err(Error::QueueFull {
                queue: queue.to_owned(),
                max_depth,
            });
        }
    }
    let now = work.now;
    // What each message turns out to be: new, a duplicate of a live message, or a duplicate of
    // an earlier message of this request. Ids are taken only for new messages.
    enum Fate {
        New,
        DuplicateOf(i64),
        SameAs(usize),
    }
    let mut fates = Vec::with_capacity(messages.len());
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, m) in messages.iter().enumerate() {
        let dedup = m
            .dedup_id
            .as_deref()
            .filter(|_| settings.dedup_window_ms > 0);
        let fate = match dedup {
            None => Fate::New,
            Some(dedup_id) => match seen.get(dedup_id) {
                Some(first) => Fate::SameAs(*first),
                None => {
                    seen.insert(dedup_id, i);
                    match tx
                        .query_opt(sql::DEDUP_LOOKUP_LIVE, &[&queue, &dedup_id, &int(now)])
                        .await?
                    {
                        Some(row) => Fate::DuplicateOf(row.get(0)),
                        None => Fate::New,
                    }
                }
            },
        };
        fates.push(fate);
    }
    let wanted = fates.iter().filter(|f| matches!(f, Fate::New)).count();
    let mut ids = match prefetched {
        Some(ids) => ids,
        None => next_ids(tx, wanted).await?,
    }
    .into_iter();
    let mut resolved: Vec<(i64, bool)> = Vec::with_capacity(messages.len());
    let (mut new_ids, mut bodies, mut attributes, mut visible_at) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut priorities, mut groups) = (Vec::new(), Vec::new());
    for (m, fate) in messages.into_iter().zip(fates) {
        let (id, duplicate) = match fate {
            Fate::DuplicateOf(original) => (original, true),
            Fate::SameAs(first) => (resolved[first].0, true),
            Fate::New => {
                let id = ids
                    .next()
                    .ok_or_else(|| Error::Unavailable("the id sequence ran short".into()))?;
                let claimed = match m
                    .dedup_id
                    .as_deref()
                    .filter(|_| settings.dedup_window_ms > 0)
                {
                    None => None,
                    Some(dedup_id) => {
                        let expires_at = int(now.saturating_add(settings.dedup_window_ms));
                        let row = tx
                            .query_opt(
                                sql::DEDUP_CLAIM,
                                &[&queue, &dedup_id, &id, &expires_at, &int(now)],
                            )
                            .await?;
                        match row {
                            Some(_) => None,
                            // Another host enqueued the same dedup id since the lookup.
                            None => Some(
                                tx.query_one(sql::DEDUP_LOOKUP, &[&queue, &dedup_id])
                                    .await?
                                    .get::<_, i64>(0),
                            ),
                        }
                    }
                };
                match claimed {
                    Some(original) => (original, true),
                    None => {
                        new_ids.push(id);
                        bodies.push(m.body);
                        attributes.push(encode_attributes(&m.attributes)?);
                        visible_at.push(int(now.saturating_add(m.delay_ms)));
                        priorities.push(m.priority);
                        groups.push(m.group);
                        (id, false)
                    }
                }
            }
        };
        resolved.push((id, duplicate));
    }
    let out = resolved
        .iter()
        .map(|(id, duplicate)| Enqueued {
            id: id.to_string(),
            duplicate: *duplicate,
        })
        .collect();
    if !new_ids.is_empty() {
        let lanes = lanes_for(tx, queue, &priorities, &groups).await?;
        let priorities: Vec<i16> = priorities.into_iter().map(i16::from).collect();
        let insert = tx.prepare_cached(sql::INSERT_MESSAGES_COUNTED).await?;
        let inserted = tx
            .execute(
                &insert,
                &[
                    &new_ids,
                    &queue,
                    &bodies,
                    &attributes,
                    &int(now),
                    &visible_at,
                    &priorities,
                    &groups,
                    &lanes,
                ],
            )
            .await?;
        added_to(inserted, queue)?;
        // Delayed messages wake consumers too: they change when the next message is due.
        work.wake.insert(queue.to_owned());
    }
    Ok(out)
}

/// Whether [`enqueue`] may run these messages outside a transaction: without dedup ids (whose
/// claims must commit with the insert) and groups (whose locks must be held until it commits).
pub fn standalone(messages: &[NewMessage]) -> bool {
    messages
        .iter()
        .all(|m| m.dedup_id.is_none() && m.group.is_none())
}

/// Enqueues each batch into its queue; returns how many messages that made. The queues'
/// statements share round trips (the connection pipelines them): one queue after another
/// took two round trips or more each, which a publish to ten subscriptions paid ten times.
pub async fn enqueue_each(
    tx: &Transaction<'_>,
    work: &mut Work,
    batches: impl IntoIterator<Item = (String, Vec<NewMessage>)>,
) -> Result<u64> {
    let (now, known) = (work.now, &work.settings);
    let parts = batches.into_iter().map(|(queue, messages)| {
        let mut part = Work::new(now);
        if let Some(settings) = known.get(&queue) {
            part.remember(&queue, settings.clone());
        }
        async move {
            let enqueued = enqueue(tx, &mut part, &queue, messages).await?.len() as u64;
            Ok::<_, Error>((enqueued, part))
        }
    });
    let parts = futures::future::try_join_all(parts).await?;
    let mut total = 0;
    for (enqueued, part) in parts {
        total += enqueued;
        work.absorb(part);
    }
    Ok(total)
}

/// `n` ids from the message sequence, in order.
async fn next_ids(tx: &impl GenericClient, n: usize) -> Result<Vec<i64>> {
    Ok(tx
        .query(
            &tx.prepare_cached(sql::NEXT_MESSAGE_IDS).await?,
            &[&(n as i64)],
        )
        .await?
        .into_iter()
        .map(|r| r.get(0))
        .collect())
}

pub async fn lease(
    tx: &Transaction<'_>,
    work: &mut Work,
    marks: &Marks,
    queue: &str,
    request: LeaseRequest,
) -> Result<Option<Lease>> {
    let LeaseRequest {
        max,
        visibility,
        max_leases,
        favoured,
    } = request;
    let settings = work.settings(tx, queue).await?;
    let max = max.min(MAX_LEASE_MESSAGES);
    if max == 0 {
        return Ok(None);
    }
    let now = work.now;
    let visibility_ms = visibility
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(settings.visibility_timeout_ms);
    let expires_at = now.saturating_add(visibility_ms);
    let lease_id: i64 = rand::random();
    // The favoured lane first, then the others from the highest priority down.
    let first = favoured.map_or(0, lane);
    let lanes: Vec<i16> = std::iter::once(first)
        .chain((0..HELD_LANE).filter(|&l| l != first))
        .collect();
    let capped = max_leases.is_some();
    // Prepared before anything is sent: under a cap, the slot's statement must reach the
    // server before the batch's, and an unprepared statement would go out a round trip late.
    let lease_statement = tx.prepare_cached(sql::LEASE).await?;
    let mut from = marks.starts(queue, &lanes);
    let take = |want: usize, from: Option<&[Mark]>| {
        let (lanes, lease_statement) = (&lanes, &lease_statement);
        let from = from.map_or_else(|| vec![START; lanes.len()], <[Mark]>::to_vec);
        let (from_visible_at, from_id): (Vec<i64>, Vec<i64>) = from.into_iter().unzip();
        async move {
            Ok::<_, Error>(
                tx.query(
                    lease_statement,
                    &[
                        &queue,
                        &int(now),
                        &(want as i64),
                        &lease_id,
                        &int(expires_at),
                        &i32::try_from(settings.max_attempts).unwrap_or(i32::MAX),
                        lanes,
                        &capped,
                        &from_visible_at,
                        &from_id,
                    ],
                )
                .await?,
            )
        }
    };
    // Under a cap the lease takes one of the queue's slots, shared by every host, in the same
    // round trip as its first batch: the batch's statement takes nothing without the slot.
    let mut first_rows = match max_leases {
        Some(cap) => {
            let slot_statement = tx.prepare_cached(sql::TAKE_SLOT).await?;
            let take_slot =
                || take_slot(tx, &slot_statement, queue, cap, lease_id, expires_at, now);
            let (slot, rows) = tokio::try_join!(take_slot(), take(max, from.as_deref()))?;
            match slot {
                Some(_) => Some(rows),
                // The queue had no slots yet, or they were all taken.
                None if add_slots(tx, queue, cap).await? => {
                    if take_slot().await?.is_none() {
                        return Ok(None);
                    }
                    None
                }
                None => return Ok(None),
            }
        }
        None => None,
    };
    let mut messages = Vec::new();
    loop {
        let want = max - messages.len();
        let rows = match first_rows.take() {
            Some(rows) => rows,
            None => take(want, from.as_deref()).await?,
        };
        let short = rows.len() < want;
        let mut taken: Vec<((i64, i64, i64), i32, Message)> = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.get(0);
            let attributes: Option<String> = row.get(2);
            let attempt: i32 = row.get(3);
            let previous: i32 = row.get(6);
            let order = (row.get::<_, i64>(7), row.get::<_, i64>(5), id);
            taken.push((
                order,
                previous,
                Message {
                    id: id.to_string(),
                    queue: queue.to_owned(),
                    body: row.get(1),
                    attributes: decode_attributes(attributes.as_deref())?,
                    attempt: u32::try_from(attempt).unwrap_or(0),
                    enqueued_at_ms: u64::try_from(row.get::<_, i64>(4)).unwrap_or(0),
                    priority: priority(row.get(8)),
                    group: row.get(9),
                    first_leased_at_ms: first_leased(row.get(10)),
                },
            ));
        }
        // Delivery order is the lease's: lane by lane, then visible_at and id.
        taken.sort_by_key(|(order, _, _)| *order);
        if short {
            marks.forget(queue);
        } else {
            marks.advance(queue, firsts(&taken, &lanes));
        }
        // Read from marks and short: what it missed may sit behind a mark (see `marks`), so
        // read again from the start of every lane.
        let again = short && from.take().is_some();
        let mut dead = false;
        for ((_, _, id), previous, m) in taken {
            if attempts_spent(u32::try_from(previous).unwrap_or(0), &settings) {
                // Delivered max_attempts times and visible again: its last consumer never
                // settled it. Delivering it once more would exceed the limit.
                dead_letter(tx, work, queue, &settings, id, REASON_LEASE_EXPIRED).await?;
                dead = true;
                continue;
            }
            messages.push(m);
        }
        // A message dead-lettered here may have held its group: the group's next message is
        // deliverable now, so look again rather than leave it for the next lease.
        if !(dead || again) || messages.len() >= max {
            break;
        }
    }
    if messages.is_empty() {
        if capped {
            tx.execute(
                &tx.prepare_cached(sql::FREE_SLOT).await?,
                &[&queue, &lease_id],
            )
            .await?;
        }
        return Ok(None);
    }
    Ok(Some(Lease {
        id: lease_id,
        queue: queue.to_owned(),
        messages,
        expires_at_ms: expires_at,
    }))
}

/// The first message a lease took in each lane (`order` is its turn, previous visible time
/// and id, sorted): where the lane's next lease starts.
fn firsts<'t, T>(
    taken: &'t [((i64, i64, i64), T, Message)],
    lanes: &'t [i16],
) -> impl Iterator<Item = (i16, Mark)> + 't {
    taken
        .chunk_by(|(a, _, _), (b, _, _)| a.0 == b.0)
        .filter_map(|chunk| {
            let &((turn, visible_at, id), _, _) = chunk.first()?;
            let lane = *lanes.get(usize::try_from(turn).ok()?.checked_sub(1)?)?;
            Some((lane, (visible_at, id)))
        })
}

/// Takes a free slot among the queue's first `cap` for `lease_id`: one with no lease or an
/// expired one. `None` when every slot is held by a live lease, or the slots do not exist yet.
/// `statement` is [`sql::TAKE_SLOT`], prepared.
async fn take_slot(
    tx: &Transaction<'_>,
    statement: &Statement,
    queue: &str,
    cap: u32,
    lease_id: i64,
    expires_at: u64,
    now: u64,
) -> Result<Option<i32>> {
    let cap = i32::try_from(cap).unwrap_or(i32::MAX);
    let row = tx
        .query_opt(
            statement,
            &[&queue, &cap, &lease_id, &int(expires_at), &int(now)],
        )
        .await?;
    Ok(row.map(|r| r.get::<_, i32>(0)))
}

/// Creates the queue's first `cap` slots the first time a cap (or a raised one) needs them.
/// True when some were missing, so taking one is worth trying again.
async fn add_slots(tx: &Transaction<'_>, queue: &str, cap: u32) -> Result<bool> {
    let cap = i32::try_from(cap).unwrap_or(i32::MAX);
    let slots: i64 = tx
        .query_one(&tx.prepare_cached(sql::COUNT_SLOTS).await?, &[&queue, &cap])
        .await?
        .get(0);
    if slots >= i64::from(cap) {
        return Ok(false);
    }
    tx.execute(sql::ADD_SLOTS, &[&queue, &cap]).await?;
    Ok(true)
}

pub async fn extend(
    tx: &Transaction<'_>,
    work: &Work,
    queue: &str,
    lease_id: i64,
    ids: &[String],
    visibility: Duration,
) -> Result<u64> {
    let visibility_ms = u64::try_from(visibility.as_millis()).unwrap_or(u64::MAX);
    let expires_at = int(work.now.saturating_add(visibility_ms));
    let ids: Vec<i64> = ids.iter().filter_map(|id| message_id(id)).collect();
    let extended = tx
        .execute(
            &tx.prepare_cached(sql::EXTEND_LEASE).await?,
            &[&ids, &lease_id, &expires_at, &queue],
        )
        .await?;
    tx.execute(
        &tx.prepare_cached(sql::EXTEND_SLOT).await?,
        &[&queue, &lease_id, &expires_at],
    )
    .await?;
    Ok(extended)
}

/// Applies a whole settlement; any error rolls back all of it (the caller's transaction).
pub async fn settle(
    tx: &Transaction<'_>,
    work: &mut Work,
    queue: &str,
    lease_id: i64,
    settlement: Settlement,
) -> Result<Settled> {
    let Settlement {
        ack,
        retry,
        dead_letter: dead,
        send,
        publish,
        replies,
        state,
    } = settlement;
    let now = work.now;
    let mut out = Settled::default();
    // Refuse a settlement whose sends cannot go before changing anything: ids taken from the
    // sequence by a rolled-back transaction are never given back.
    for (target, message) in &send {
        let settings = work.settings(tx, target).await?;
        validate::messages_fit(target, &settings, std::slice::from_ref(message))?;
    }
    // A settle frees a lease and its slot: consumers on any host waiting at the queue's
    // concurrency cap may lease again. An ack counts only while this lease still holds the
    // message; ids that are not ours can never be held, so they are simply stale. Both
    // statements go out together (the connection pipelines them).
    let free_slot = async {
        let free = tx.prepare_cached(sql::FREE_SLOT).await?;
        tx.execute(&free, &[&queue, &lease_id]).await?;
        Ok::<_, Error>(())
    };
    let acks = async {
        if ack.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = ack.iter().filter_map(|id| message_id(id)).collect();
        let ack_many = tx.prepare_cached(sql::ACK_MANY).await?;
        Ok::<_, Error>(tx.query(&ack_many, &[&ids, &lease_id, &queue]).await?)
    };
    let ((), gone) = tokio::try_join!(free_slot, acks)?;
    work.freed.insert(queue.to_owned());
    let groups: Vec<String> = gone
        .iter()
        .filter_map(|row| row.get::<_, Option<String>>(1))
        .collect();
    release_groups(tx, work, queue, groups.iter().map(String::as_str)).await?;
    if !ack.is_empty() {
        out.acked = gone.len() as u64;
        let gone: HashSet<i64> = gone.iter().map(|row| row.get(0)).collect();
        out.stale.extend(stale_acks(ack, &gone));
        // ACK_MANY recorded the acked delta itself.
        if !replies.is_empty() {
            out.replied = super::replies::insert(tx, work, queue, replies, |id| {
                message_id(id).is_some_and(|id| gone.contains(&id))
            })
            .await?;
        }
    }

    // What the lease still holds of the rest decides their fate (rules::dispose).
    let mut held = HashMap::new();
    for id in disposal_ids(&retry, &dead) {
        if let Some(attempt) = held_by(tx, queue, id, lease_id).await? {
            held.insert(id, attempt);
        }
    }
    let settings = work.settings(tx, queue).await?;
    let (disposals, stale) = dispose(retry, dead, |id| held.get(&id).copied(), &settings, now);
    out.stale.extend(stale);
    // State writes need the lease to hold every message named, and a compare-and-swap its key
    // unchanged; a conflict undoes it all, and is found before anything takes a message id.
    crate::store::state::check_lease_held(&out.stale, &state)?;
    super::kv::apply(tx, now, state).await?;
    for disposal in disposals {
        match disposal {
            Disposal::Retry {
                id,
                visible_at,
                error,
            } => {
                tx.execute(
                    &tx.prepare_cached(sql::RETRY).await?,
                    &[&id, &int(visible_at), &error, &queue],
                )
                .await?;
                out.retried += 1;
                work.count(queue).retried += 1;
                work.wake.insert(queue.to_owned());
            }
            Disposal::DeadLetter { id, reason } => {
                if dead_letter(tx, work, queue, &settings, id, &reason).await? {
                    out.dead_lettered += 1;
                } else {
                    out.dropped += 1;
                }
            }
        }
    }

    // Sends go out grouped by target (order kept within each), one insert per target. A
    // missing queue or an oversized message fails the whole settlement.
    out.sent += enqueue_each(tx, work, crate::store::rules::by_target(send)).await?;
    for (topic, messages) in crate::store::rules::by_target(publish) {
        // So does a missing topic, or a copy a subscribed queue refuses.
        out.published += super::topics::publish(tx, work, &topic, messages)
            .await?
            .len() as u64;
    }
    Ok(out)
}

/// The message's attempt when `lease_id` still holds it (locked until commit).
async fn held_by(tx: &Transaction<'_>, queue: &str, id: i64, lease_id: i64) -> Result<Option<u32>> {
    let row = tx
        .query_opt(
            &tx.prepare_cached(sql::LEASED_ATTEMPT).await?,
            &[&id, &lease_id, &queue],
        )
        .await?;
    Ok(row.map(|r| u32::try_from(r.get::<_, i32>(0)).unwrap_or(0)))
}

/// Moves message `id` to the queue's dead-letter queue as a new message, with the reason,
/// attempts and source queue as attributes; without one, deletes it. True when dead-lettered.
async fn dead_letter(
    tx: &Transaction<'_>,
    work: &mut Work,
    queue: &str,
    settings: &QueueSettings,
    id: i64,
    reason: &str,
) -> Result<bool> {
    let Some(row) = tx.query_opt(sql::DELETE_FOR_MOVE, &[&id, &queue]).await? else {
        return Ok(false);
    };
    let body: Vec<u8> = row.get(0);
    let attributes: Option<String> = row.get(1);
    let attempt: i32 = row.get(2);
    let priority = priority(row.get(3));
    let group: Option<String> = row.get(4);
    release_groups(tx, work, queue, group.as_deref()).await?;
    let Some(dlq) = &settings.dead_letter_queue else {
        work.count(queue).dropped += 1;
        return Ok(false);
    };
    let attributes = dead_letter_attributes(
        decode_attributes(attributes.as_deref())?,
        queue,
        id,
        u32::try_from(attempt).unwrap_or(0),
        reason,
    );
    let now = int(work.now);
    let lane = lanes_for(tx, dlq, &[priority], std::slice::from_ref(&group)).await?[0];
    let moved = tx
        .execute(
            sql::INSERT_MOVED,
            &[
                dlq,
                &body,
                &encode_attributes(&attributes)?,
                &now,
                &Some(queue),
                &i16::from(priority),
                &group,
                &lane,
                &Some(reason),
            ],
        )
        .await?;
    added_to(moved, dlq)?;
    work.count(queue).dead_lettered += 1;
    work.count(dlq).enqueued += 1;
    work.wake.insert(dlq.clone());
    Ok(true)
}

pub async fn redrive(
    tx: &Transaction<'_>,
    work: &mut Work,
    dlq: &str,
    to: Option<&str>,
    limit: Option<u64>,
) -> Result<u64> {
    work.settings(tx, dlq).await?;
    if let Some(to) = to {
        if to == dlq {
            return Err(Error::InvalidSettings(format!(
                "cannot redrive `{dlq}` into itself"
            )));
        }
        work.settings(tx, to).await?;
    }
    let now = int(work.now);
    let limit = limit.unwrap_or(u64::MAX);
    let mut moved = 0u64;
    let mut cursor = 0i64;
    while moved < limit {
        let page = (limit - moved).min(500) as i64;
        let rows = tx
            .query(sql::REDRIVABLE, &[&dlq, &cursor, &now, &page])
            .await?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            let id: i64 = row.get(0);
            let source: Option<String> = row.get(1);
            cursor = id;
            // Messages whose source is unknown or gone stay in the dead-letter queue.
            let Some(target) = redrive_target(dlq, to, source) else {
                continue;
            };
            if move_back(tx, work, dlq, id, &target).await? {
                moved += 1;
            } else {
                continue;
            }
            if moved >= limit {
                break;
            }
        }
    }
    Ok(moved)
}

/// Moves message `id` of a dead-letter queue to `target` as a new message without Sluice's
/// attributes (attempts start again). False when the target or the message is gone.
async fn move_back(
    tx: &Transaction<'_>,
    work: &mut Work,
    dlq: &str,
    id: i64,
    target: &str,
) -> Result<bool> {
    match work.settings(tx, target).await {
        Ok(_) => {}
        Err(Error::QueueNotFound(_)) => return Ok(false),
        Err(e) => return Err(e),
    }
    let Some(moving) = tx.query_opt(sql::DELETE_FOR_MOVE, &[&id, &dlq]).await? else {
        return Ok(false);
    };
    let body: Vec<u8> = moving.get(0);
    let attributes: Option<String> = moving.get(1);
    let priority = priority(moving.get(3));
    let group: Option<String> = moving.get(4);
    release_groups(tx, work, dlq, group.as_deref()).await?;
    let attributes = redriven_attributes(decode_attributes(attributes.as_deref())?);
    let lane = lanes_for(tx, target, &[priority], std::slice::from_ref(&group)).await?[0];
    let moved = tx
        .execute(
            sql::INSERT_MOVED,
            &[
                &target,
                &body,
                &encode_attributes(&attributes)?,
                &int(work.now),
                &None::<&str>,
                &i16::from(priority),
                &group,
                &lane,
                &None::<&str>,
            ],
        )
        .await?;
    added_to(moved, target)?;
    work.count(target).enqueued += 1;
    work.wake.insert(target.to_owned());
    Ok(true)
}

/// Like [`redrive`], for the listed messages of `dlq` only; others are skipped.
pub async fn redrive_ids(
    tx: &Transaction<'_>,
    work: &mut Work,
    dlq: &str,
    to: Option<&str>,
    ids: &[String],
) -> Result<u64> {
    work.settings(tx, dlq).await?;
    if let Some(to) = to {
        if to == dlq {
            return Err(Error::InvalidSettings(format!(
                "cannot redrive `{dlq}` into itself"
            )));
        }
        work.settings(tx, to).await?;
    }
    let now = int(work.now);
    let mut moved = 0;
    for id in ids.iter().filter_map(|id| message_id(id)) {
        let Some(row) = tx
            .query_opt(sql::REDRIVABLE_ONE, &[&id, &dlq, &now])
            .await?
        else {
            continue;
        };
        let source: Option<String> = row.get(0);
        let Some(target) = redrive_target(dlq, to, source) else {
            continue;
        };
        if move_back(tx, work, dlq, id, &target).await? {
            moved += 1;
        }
    }
    Ok(moved)
}

/// Deletes the listed messages of `queue`, in flight or not.
pub async fn delete(
    tx: &Transaction<'_>,
    work: &mut Work,
    queue: &str,
    ids: &[String],
) -> Result<u64> {
    work.settings(tx, queue).await?;
    let ids: Vec<i64> = ids.iter().filter_map(|id| message_id(id)).collect();
    let gone = tx.query(sql::DELETE_LISTED, &[&ids, &queue]).await?;
    let groups: Vec<String> = gone.iter().filter_map(|r| r.get(0)).collect();
    release_groups(tx, work, queue, groups.iter().map(String::as_str)).await?;
    Ok(gone.len() as u64)
}

/// The most messages one sweep deletes per queue, so a backlog expiring at once is spread
/// over sweeps.
const MAX_EXPIRED_PER_SWEEP: u64 = 50_000;
/// How many of a queue's oldest messages one step of the sweep reads: all of them when none
/// has expired, so this bounds a sweep's cost on a queue with nothing to expire.
const EXPIRE_STEP: u64 = 1_000;

/// The retention sweep: deletes messages older than their queue's retention and forgets dedup
/// ids whose window has passed. Several hosts may sweep at once: each message is deleted (and
/// counted) by exactly one of them.
pub async fn expire(tx: &Transaction<'_>, work: &mut Work) -> Result<u64> {
    let now = work.now;
    tx.execute(sql::DEDUP_FORGET_EXPIRED, &[&int(now)]).await?;
    let mut total = 0u64;
    for row in tx.query(sql::QUEUE_RETENTIONS, &[]).await? {
        let queue: String = row.get(0);
        let settings = decode_settings(&queue, row.get(1))?;
        let horizon = int(now.saturating_sub(settings.retention_ms));
        let mut deleted = 0;
        // Step on while every oldest message read had expired: the next may have too.
        while deleted < MAX_EXPIRED_PER_SWEEP {
            let gone = tx
                .query(
                    sql::EXPIRE_OLDEST,
                    &[&queue, &horizon, &(EXPIRE_STEP as i64)],
                )
                .await?;
            let step = gone.len() as u64;
            let groups: Vec<String> = gone.iter().filter_map(|r| r.get(0)).collect();
            release_groups(tx, work, &queue, groups.iter().map(String::as_str)).await?;
            deleted += step;
            if step < EXPIRE_STEP {
                break;
            }
        }
        if deleted > 0 {
            work.count(&queue).expired += deleted as i64;
            total += deleted;
        }
    }
    // Fold the counter deltas appended since the last sweep into the queues' totals.
    tx.execute(sql::FOLD_COUNTS, &[]).await?;
    Ok(total)
}

pub async fn purge(tx: &Transaction<'_>, work: &mut Work, queue: &str) -> Result<u64> {
    work.settings(tx, queue).await?;
    let row = tx.query_one(sql::PURGE_QUEUE_MESSAGES, &[&queue]).await?;
    // Messages enqueued while the purge ran are kept; their groups must not wait for the
    // purged ones.
    let groups: Vec<String> = row.get(1);
    release_groups(tx, work, queue, groups.iter().map(String::as_str)).await?;
    Ok(count(row.get(0)))
}

/// Unacknowledged messages after a cursor, in id order.
pub fn peek_rows(rows: Vec<tokio_postgres::Row>, queue: &str) -> Result<Vec<Message>> {
    rows.into_iter()
        .map(|row| {
            let attributes: Option<String> = row.get(2);
            Ok(Message {
                id: row.get::<_, i64>(0).to_string(),
                queue: queue.to_owned(),
                body: row.get(1),
                attributes: decode_attributes(attributes.as_deref())?,
                attempt: u32::try_from(row.get::<_, i32>(3)).unwrap_or(0),
                enqueued_at_ms: u64::try_from(row.get::<_, i64>(4)).unwrap_or(0),
                priority: priority(row.get(5)),
                group: row.get(6),
                first_leased_at_ms: first_leased(row.get(7)),
            })
        })
        .collect()
}

/// The rows of [`sql::DEAD_LETTER_REASONS`].
pub fn reason_counts(rows: Vec<tokio_postgres::Row>) -> ReasonCounts {
    ReasonCounts::from_rows(rows.iter().map(|row| ReasonRow {
        total: row.get(0),
        reason: row.get(1),
        count: row.get::<_, Option<i64>>(2).unwrap_or(0),
        with_reason: row.get::<_, Option<i64>>(3).unwrap_or(0),
        distinct: row.get::<_, Option<i64>>(4).unwrap_or(0),
    }))
}

pub fn parse_cursor(cursor: Option<&str>) -> Result<i64> {
    match cursor {
        None => Ok(0),
        Some(c) => message_id(c)
            .filter(|id| *id >= 0)
            .ok_or_else(|| Error::InvalidCursor(c.to_owned())),
    }
}
