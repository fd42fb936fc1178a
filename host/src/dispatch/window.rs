//! Batch-window timing: when a trigger should lease now, and how long it may wait for a fuller
//! batch. A pure decision, tested beside it.

use std::time::Duration;

use tokio::time::Instant;

/// What the trigger should do with the messages visible now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Nothing is visible: wait for an enqueue or a timer.
    Idle,
    /// Lease a batch now.
    Lease,
    /// Some messages are visible but fewer than a batch: wait for more until this instant.
    WaitUntil(Instant),
}

/// `opened` is when the window started (the first time messages were seen visible).
pub fn decide(
    visible: u64,
    batch_size: u32,
    max_wait: Duration,
    opened: Option<Instant>,
    now: Instant,
) -> Window {
    if visible == 0 {
        return Window::Idle;
    }
    if visible >= u64::from(batch_size) || max_wait.is_zero() {
        return Window::Lease;
    }
    let deadline = opened.unwrap_or(now) + max_wait;
    if now >= deadline {
        Window::Lease
    } else {
        Window::WaitUntil(deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_batch_or_no_window_leases_at_once() {
        let now = Instant::now();
        assert_eq!(
            decide(0, 10, Duration::from_millis(100), None, now),
            Window::Idle
        );
        assert_eq!(
            decide(10, 10, Duration::from_millis(100), None, now),
            Window::Lease
        );
        assert_eq!(decide(1, 10, Duration::ZERO, None, now), Window::Lease);
    }

    #[test]
    fn partial_batch_waits_until_the_window_closes() {
        let now = Instant::now();
        let wait = Duration::from_millis(200);
        assert_eq!(
            decide(3, 10, wait, None, now),
            Window::WaitUntil(now + wait)
        );
        let opened = now - Duration::from_millis(150);
        assert_eq!(
            decide(3, 10, wait, Some(opened), now),
            Window::WaitUntil(opened + wait)
        );
        let opened = now - Duration::from_millis(250);
        assert_eq!(decide(3, 10, wait, Some(opened), now), Window::Lease);
    }
}
