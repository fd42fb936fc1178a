//! Pure checks of queue names and settings, and the backoff computation: no I/O, so each rule
//! is tested on its own.

use super::{
    Backoff, DEFAULT_PRIORITY, Error, MAX_GROUP_BYTES, MAX_PRIORITY, NewMessage, QueueSettings,
    Result, TriggerRecord,
};

pub const MAX_QUEUE_NAME_LEN: usize = 80;
pub const MAX_VISIBILITY_TIMEOUT_MS: u64 = 12 * 60 * 60 * 1000;
pub const MAX_MESSAGE_BYTES_LIMIT: usize = 1024 * 1024;
pub const MAX_ATTEMPTS_LIMIT: u32 = 1000;
pub const MAX_RETENTION_MS: u64 = 365 * 24 * 60 * 60 * 1000;
pub const MAX_DEDUP_WINDOW_MS: u64 = 24 * 60 * 60 * 1000;

/// The ending a queue name may have besides its `A-Z a-z 0-9 _ -` (SQS FIFO queues').
pub const FIFO_SUFFIX: &str = ".fifo";

/// Queue names are 1 to 80 characters of `A-Z a-z 0-9 _ -`, so they are safe in URLs, metric
/// labels and file names alike; they may end in `.fifo`, as SQS FIFO queues' names must.
pub fn validate_queue_name(name: &str) -> Result<()> {
    let invalid = |reason: String| {
        Err(Error::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("a name cannot be empty".into());
    }
    if name.len() > MAX_QUEUE_NAME_LEN {
        return invalid(format!("a name is at most {MAX_QUEUE_NAME_LEN} characters"));
    }
    let base = match name.strip_suffix(FIFO_SUFFIX) {
        Some("") => return invalid(format!("a name needs more than `{FIFO_SUFFIX}`")),
        Some(base) => base,
        None => name,
    };
    if let Some(c) = base
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return invalid(format!(
            "{c:?} is not allowed; use only letters A-Z a-z, digits 0-9, `_` and `-` (and a \
             `{FIFO_SUFFIX}` ending)"
        ));
    }
    Ok(())
}

/// Checks settings on their own (whether the dead-letter queue exists is checked in the
/// transaction that stores them).
pub fn settings(queue: &str, s: &QueueSettings) -> Result<()> {
    let invalid = |msg: String| Err(Error::InvalidSettings(msg));
    if s.visibility_timeout_ms == 0 || s.visibility_timeout_ms > MAX_VISIBILITY_TIMEOUT_MS {
        return invalid(format!(
            "visibility_timeout_ms must be between 1 and {MAX_VISIBILITY_TIMEOUT_MS} (12 hours), got {}",
            s.visibility_timeout_ms
        ));
    }
    if s.max_attempts == 0 || s.max_attempts > MAX_ATTEMPTS_LIMIT {
        return invalid(format!(
            "max_attempts must be between 1 and {MAX_ATTEMPTS_LIMIT}, got {}",
            s.max_attempts
        ));
    }
    let b = &s.backoff;
    if !b.multiplier.is_finite() || b.multiplier < 1.0 {
        return invalid(format!(
            "backoff.multiplier must be a number >= 1, got {}",
            b.multiplier
        ));
    }
    if b.max_ms < b.initial_ms {
        return invalid(format!(
            "backoff.max_ms ({}) must be >= backoff.initial_ms ({})",
            b.max_ms, b.initial_ms
        ));
    }
    if b.max_ms > MAX_VISIBILITY_TIMEOUT_MS {
        return invalid(format!(
            "backoff.max_ms must be at most {MAX_VISIBILITY_TIMEOUT_MS} (12 hours), got {}",
            b.max_ms
        ));
    }
    if let Some(dlq) = &s.dead_letter_queue {
        if dlq == queue {
            return invalid(format!(
                "queue `{queue}` cannot be its own dead_letter_queue"
            ));
        }
        validate_queue_name(dlq)
            .map_err(|e| Error::InvalidSettings(format!("dead_letter_queue: {e}")))?;
    }
    if s.retention_ms < 1_000 || s.retention_ms > MAX_RETENTION_MS {
        return invalid(format!(
            "retention_ms must be between 1000 (1 second) and {MAX_RETENTION_MS} (365 days), got {}",
            s.retention_ms
        ));
    }
    if s.max_message_bytes == 0 || s.max_message_bytes > MAX_MESSAGE_BYTES_LIMIT {
        return invalid(format!(
            "max_message_bytes must be between 1 and {MAX_MESSAGE_BYTES_LIMIT} (1 MiB), got {}",
            s.max_message_bytes
        ));
    }
    if s.max_depth == Some(0) {
        return invalid("max_depth must be at least 1 (or null for unbounded)".to_owned());
    }
    if s.dedup_window_ms > MAX_DEDUP_WINDOW_MS {
        return invalid(format!(
            "dedup_window_ms must be at most {MAX_DEDUP_WINDOW_MS} (24 hours), got {}",
            s.dedup_window_ms
        ));
    }
    Ok(())
}

impl Backoff {
    /// The delay before redelivering a message whose delivery number `attempt` (1-based)
    /// failed: `initial_ms * multiplier^(attempt-1)` capped at `max_ms`, then, with jitter,
    /// spread over `[delay/2, delay]` by `unit` (a random number in `[0, 1)`), so a failed
    /// batch's messages neither return together nor come back at once.
    pub fn delay_ms(&self, attempt: u32, unit: f64) -> u64 {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let raw = self.initial_ms as f64 * self.multiplier.powi(exponent);
        let capped = if raw.is_finite() {
            raw.min(self.max_ms as f64)
        } else {
            self.max_ms as f64
        };
        let delay = if self.jitter {
            capped * (0.5 + 0.5 * unit.clamp(0.0, 1.0))
        } else {
            capped
        };
        // `as` saturates on floats, which is the cap we want.
        delay as u64
    }
}

/// Refuses messages larger than the queue's `max_message_bytes`: the one check of a message
/// that depends on its queue, so a backend makes it in the transaction that reads the queue's
/// settings. Everything else about a message is checked by [`message`] before any backend sees
/// it.
pub fn messages_fit(queue: &str, settings: &QueueSettings, messages: &[NewMessage]) -> Result<()> {
    for m in messages {
        let size = message_size(&m.body, &m.attributes);
        if size > settings.max_message_bytes {
            return Err(Error::MessageTooLarge {
                queue: queue.to_owned(),
                size,
                limit: settings.max_message_bytes,
            });
        }
    }
    Ok(())
}

/// A message's priority is 0 to 9 and its group key, if any, 1 to 128 bytes.
pub fn message(m: &NewMessage) -> Result<()> {
    if m.priority > MAX_PRIORITY {
        return Err(Error::InvalidMessage(format!(
            "priority {} is out of range; give 0 (lowest) to {MAX_PRIORITY} (highest), or \
             leave it out for {DEFAULT_PRIORITY}",
            m.priority
        )));
    }
    if let Some(group) = &m.group {
        if group.is_empty() || group.len() > MAX_GROUP_BYTES {
            return Err(Error::InvalidMessage(format!(
                "a group key must be 1 to {MAX_GROUP_BYTES} bytes, not {}",
                group.len()
            )));
        }
        if group.chars().any(char::is_control) {
            return Err(Error::InvalidMessage(
                "a group key must not contain control characters".into(),
            ));
        }
    }
    Ok(())
}

/// A trigger takes at least one message at a time, with at least one batch in flight.
pub fn trigger(trigger: &TriggerRecord) -> Result<()> {
    if trigger.batch_size == 0 {
        return Err(Error::InvalidSettings(
            "trigger batch_size must be at least 1".into(),
        ));
    }
    if trigger.max_concurrency == 0 {
        return Err(Error::InvalidSettings(
            "trigger max_concurrency must be at least 1".into(),
        ));
    }
    Ok(())
}

/// Attribute names starting with this (in any case) belong to Sluice: it sets them on
/// dead-lettered messages and removes them on redrive, so producers may not.
pub const RESERVED_ATTRIBUTE_PREFIX: &str = "sluice-";

pub fn is_reserved_attribute(name: &str) -> bool {
    name.get(..RESERVED_ATTRIBUTE_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_ATTRIBUTE_PREFIX))
}

/// The encoded size of a message counted against `max_message_bytes`: the body plus every
/// attribute name and value.
pub fn message_size(body: &[u8], attributes: &[(String, String)]) -> usize {
    body.len()
        + attributes
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Rust SDK's harness checks what a handler sends against the same limits.
    #[test]
    fn the_rust_sdk_states_the_host_limits() {
        assert_eq!(sluice_sdk::MAX_PRIORITY, MAX_PRIORITY);
        assert_eq!(sluice_sdk::DEFAULT_PRIORITY, DEFAULT_PRIORITY);
        assert_eq!(sluice_sdk::MAX_GROUP_BYTES, MAX_GROUP_BYTES);
    }

    #[test]
    fn names() {
        assert!(validate_queue_name("orders_v2-eu").is_ok());
        assert!(validate_queue_name(&"a".repeat(80)).is_ok());
        assert!(validate_queue_name(&"a".repeat(81)).is_err());
        assert!(validate_queue_name("").is_err());
        let err = validate_queue_name("a b").unwrap_err().to_string();
        assert!(err.contains("A-Z a-z"), "{err}");
        assert!(validate_queue_name("é").is_err());
        assert!(validate_queue_name("a/b").is_err());
        assert!(validate_queue_name("orders.fifo").is_ok());
        assert!(validate_queue_name(&format!("{}.fifo", "a".repeat(75))).is_ok());
        assert!(validate_queue_name(".fifo").is_err());
        assert!(validate_queue_name("a.b").is_err());
        assert!(validate_queue_name("a.fifo.fifo").is_err());
    }

    #[test]
    fn default_settings_are_valid() {
        assert!(settings("q", &QueueSettings::default()).is_ok());
    }

    #[test]
    fn bad_settings() {
        let bad = [
            QueueSettings {
                max_attempts: 0,
                ..Default::default()
            },
            QueueSettings {
                visibility_timeout_ms: 0,
                ..Default::default()
            },
            QueueSettings {
                visibility_timeout_ms: MAX_VISIBILITY_TIMEOUT_MS + 1,
                ..Default::default()
            },
            QueueSettings {
                dead_letter_queue: Some("q".into()),
                ..Default::default()
            },
            QueueSettings {
                dead_letter_queue: Some("bad name".into()),
                ..Default::default()
            },
            QueueSettings {
                max_message_bytes: MAX_MESSAGE_BYTES_LIMIT + 1,
                ..Default::default()
            },
            QueueSettings {
                retention_ms: 0,
                ..Default::default()
            },
            QueueSettings {
                backoff: Backoff {
                    multiplier: 0.5,
                    ..Default::default()
                },
                ..Default::default()
            },
            QueueSettings {
                backoff: Backoff {
                    multiplier: f64::NAN,
                    ..Default::default()
                },
                ..Default::default()
            },
            QueueSettings {
                backoff: Backoff {
                    initial_ms: 10,
                    max_ms: 5,
                    ..Default::default()
                },
                ..Default::default()
            },
        ];
        for s in bad {
            assert!(
                matches!(settings("q", &s), Err(Error::InvalidSettings(_))),
                "{s:?}"
            );
        }
    }

    #[test]
    fn reserved_attributes() {
        assert!(is_reserved_attribute("sluice-attempts"));
        assert!(is_reserved_attribute("Sluice-Anything"));
        assert!(!is_reserved_attribute("sluice"));
        assert!(!is_reserved_attribute("my-sluice-x"));
        assert!(!is_reserved_attribute("é"));
    }

    #[test]
    fn backoff_grows_and_caps() {
        let b = Backoff {
            initial_ms: 100,
            multiplier: 2.0,
            max_ms: 1_000,
            jitter: false,
        };
        assert_eq!(b.delay_ms(1, 0.5), 100);
        assert_eq!(b.delay_ms(2, 0.5), 200);
        assert_eq!(b.delay_ms(4, 0.5), 800);
        assert_eq!(b.delay_ms(5, 0.5), 1_000);
        assert_eq!(b.delay_ms(u32::MAX, 0.5), 1_000);
        let j = Backoff { jitter: true, ..b };
        assert_eq!(j.delay_ms(2, 0.5), 150);
        assert_eq!(j.delay_ms(2, 0.0), 100);
    }
}
