//! Priority turns: which priority a lease serves out of turn, so that a steady stream of
//! high-priority messages never starves the lower ones.

use std::collections::HashMap;
use std::sync::Mutex;

use super::MAX_PRIORITY;

/// One lease in this many serves a priority out of turn.
pub const FAVOURED_TURN: u64 = 10;

/// The priority lease number `turn` (0, 1, 2, … per queue) serves first, if any. Leases take
/// higher priorities first, so a steady stream of high-priority messages would keep lower ones
/// waiting forever; instead every [`FAVOURED_TURN`]th lease serves one priority first, each
/// priority in turn, so every priority is served first at least once in 100 leases of its
/// queue (per host), whatever else is waiting.
pub fn favoured_priority(turn: u64) -> Option<u8> {
    (turn % FAVOURED_TURN == FAVOURED_TURN - 1)
        .then(|| ((turn / FAVOURED_TURN) % (u64::from(MAX_PRIORITY) + 1)) as u8)
}

/// Leases taken per queue by one store handle.
#[derive(Debug, Default)]
pub struct Turns(Mutex<HashMap<String, u64>>);

impl Turns {
    /// Counts a lease of `queue` and says which priority it serves out of turn.
    pub fn next(&self, queue: &str) -> Option<u8> {
        let mut turns = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let turn = match turns.get_mut(queue) {
            Some(turn) => turn,
            None => turns.entry(queue.to_owned()).or_default(),
        };
        let favoured = favoured_priority(*turn);
        *turn += 1;
        favoured
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_priority_is_favoured_once_in_a_hundred_turns_of_one_queue() {
        let turns = Turns::default();
        let mut favoured: Vec<u8> = (0..100).filter_map(|_| turns.next("q")).collect();
        favoured.sort_unstable();
        assert_eq!(favoured, (0..=MAX_PRIORITY).collect::<Vec<_>>());
        assert_eq!(turns.next("other"), None, "queues take turns apart");
    }
}
