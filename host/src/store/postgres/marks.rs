//! Where this host's leases start reading each queue: a low-water mark per lane, so a lease
//! draining a backlog does not step over the dead index entries of every message taken before
//! it (PostgreSQL keeps them until a vacuum, and with them a lease at the back of a long drain
//! read ever more of the index: a client leasing and acknowledging 100 at a time managed 466
//! transactions a second at the start of a two-million-message drain and 172 at its end; from
//! the mark, 635 throughout).
//!
//! A lane's mark is the first message (by `visible_at`, then id) the last full lease of that
//! lane took: every message still deliverable in the lane sorts at or after it, except one
//! made deliverable behind it since. A lease puts a message there only by a clock behind the
//! one that set the mark (another host's), a group head released (its visible time is when it
//! was enqueued), or a lease rolled back after skipping past rows another transaction held.
//! So marks are kept for [`MARK_LIFETIME`] at most, forgotten when this host releases a group
//! head in the queue, and a lease from a mark that comes back short reads again from the
//! start: a message behind a mark waits at most that long while a backlog drains, and not at
//! all once the queue is short.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a mark is trusted; then one lease reads the lane from its start again.
pub const MARK_LIFETIME: Duration = Duration::from_secs(1);

/// Where a lane's scan starts: `(visible_at, id)`, inclusive.
pub type Mark = (i64, i64);

/// The start of a lane with no mark: before every message.
pub const START: Mark = (i64::MIN, i64::MIN);

/// The marks of every queue this host leases from.
#[derive(Debug, Default)]
pub struct Marks {
    queues: Mutex<HashMap<String, QueueMarks>>,
}

#[derive(Debug)]
struct QueueMarks {
    set_at: Instant,
    lanes: HashMap<i16, Mark>,
}

impl Marks {
    /// Where a lease of `queue` starts in each of `lanes`, in their order; `None` when it
    /// reads every lane from its start.
    pub fn starts(&self, queue: &str, lanes: &[i16]) -> Option<Vec<Mark>> {
        let mut queues = self.lock();
        let marks = queues.get(queue)?;
        if marks.set_at.elapsed() >= MARK_LIFETIME {
            queues.remove(queue);
            return None;
        }
        Some(
            lanes
                .iter()
                .map(|lane| marks.lanes.get(lane).copied().unwrap_or(START))
                .collect(),
        )
    }

    /// After a lease of `queue` that took all it asked for: each lane it took from starts,
    /// next time, at the first message it took there. A queue's marks live
    /// [`MARK_LIFETIME`] from the first of them.
    pub fn advance(&self, queue: &str, firsts: impl IntoIterator<Item = (i16, Mark)>) {
        let mut queues = self.lock();
        if !queues.contains_key(queue) {
            // Once a second at most per queue: drop the marks of queues no longer leased
            // (deleted, say) along with every other expired one.
            queues.retain(|_, marks| marks.set_at.elapsed() < MARK_LIFETIME);
        }
        let marks = queues
            .entry(queue.to_owned())
            .or_insert_with(|| QueueMarks {
                set_at: Instant::now(),
                lanes: HashMap::new(),
            });
        marks.lanes.extend(firsts);
    }

    /// The next lease of `queue` reads every lane from its start.
    pub fn forget(&self, queue: &str) {
        self.lock().remove(queue);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, QueueMarks>> {
        self.queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_starts_where_the_last_full_lease_of_each_lane_began() {
        let marks = Marks::default();
        assert_eq!(marks.starts("q", &[5, 0]), None, "no mark yet");
        marks.advance("q", [(5, (10, 7))]);
        assert_eq!(marks.starts("q", &[5, 0]), Some(vec![(10, 7), START]));
        // A lane the lease did not take from keeps its mark.
        marks.advance("q", [(0, (3, 1))]);
        assert_eq!(marks.starts("q", &[0, 5]), Some(vec![(3, 1), (10, 7)]));
        marks.advance("q", [(5, (10, 8))]);
        assert_eq!(marks.starts("q", &[5]), Some(vec![(10, 8)]));
        assert_eq!(marks.starts("other", &[5]), None, "marks are per queue");
        marks.forget("q");
        assert_eq!(marks.starts("q", &[5]), None);
    }

    #[test]
    fn marks_are_trusted_for_a_while_only() {
        let marks = Marks::default();
        let expire = |queue: &str| {
            marks.lock().get_mut(queue).expect("marks").set_at -= MARK_LIFETIME;
        };
        marks.advance("q", [(5, (10, 7))]);
        expire("q");
        assert_eq!(marks.starts("q", &[5]), None, "expired");
        assert!(
            marks.lock().is_empty(),
            "an expired mark is dropped when read"
        );
        // A queue no longer leased (deleted, say) is dropped when another queue's marks begin.
        marks.advance("gone", [(5, (1, 1))]);
        expire("gone");
        marks.advance("q", [(5, (10, 7))]);
        assert_eq!(marks.lock().keys().collect::<Vec<_>>(), ["q"]);
    }
}
