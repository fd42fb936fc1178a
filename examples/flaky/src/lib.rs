//! Fails on demand, to show retries, backoff and the dead-letter queue. Each message's `fail`
//! attribute chooses what happens to it:
//!
//! - `retry`: retried after the queue's backoff, or after `retry-after-ms` milliseconds when that
//!   attribute is set; with `succeed-on-attempt: N` it is retried only until attempt `N`;
//! - `dead-letter`: dead-lettered, with the `reason` attribute (or a default) as the reason;
//! - `error`: the handler returns `Err`, so the whole batch is retried;
//! - `panic`: the handler panics (a trap), so the whole batch is retried;
//! - anything else, or no `fail` attribute: acknowledged.

use std::time::Duration;

use sluice_sdk::{Batch, Context, Error, Outcome};

fn handle(batch: Batch) -> Result<Outcome, Error> {
    let mut outcome = Outcome::ack_all();
    for msg in &batch {
        match msg.attribute("fail") {
            Some("retry") => {
                let done = match msg.attribute("succeed-on-attempt") {
                    Some(n) => msg.attempt() >= n.parse::<u32>().context("succeed-on-attempt")?,
                    None => false,
                };
                if done {
                    continue;
                }
                match msg.attribute("retry-after-ms") {
                    Some(ms) => {
                        let ms = ms.parse::<u64>().context("retry-after-ms")?;
                        outcome.retry_after(msg, Duration::from_millis(ms))
                    }
                    None => outcome.retry(msg),
                };
            }
            Some("dead-letter") => {
                let reason = msg
                    .attribute("reason")
                    .unwrap_or("flaky: asked to dead-letter");
                outcome.dead_letter(msg, reason);
            }
            Some("error") => {
                return Err(Error::new(format!(
                    "flaky: message {} asked to fail the batch",
                    msg.id()
                )));
            }
            Some("panic") => panic!("flaky: message {} asked to panic", msg.id()),
            _ => {}
        }
    }
    Ok(outcome)
}

sluice_sdk::export_handler!(handle);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::{Disposition, testing};

    #[test]
    fn per_message_failures() {
        let report = testing::run(
            handle,
            [
                testing::message("ok"),
                testing::message("r").attribute("fail", "retry"),
                testing::message("r2")
                    .attribute("fail", "retry")
                    .attribute("retry-after-ms", "1500"),
                testing::message("d").attribute("fail", "dead-letter"),
                testing::message("d2")
                    .attribute("fail", "dead-letter")
                    .attribute("reason", "bad customer"),
            ],
        );
        assert_eq!(report.acked(), ["msg-1"]);
        assert_eq!(report.disposition("msg-2"), Some(&Disposition::Retry(None)));
        assert_eq!(
            report.disposition("msg-3"),
            Some(&Disposition::Retry(Some(Duration::from_millis(1500))))
        );
        assert_eq!(
            report.disposition("msg-4"),
            Some(&Disposition::DeadLetter(
                "flaky: asked to dead-letter".into()
            ))
        );
        assert_eq!(
            report.disposition("msg-5"),
            Some(&Disposition::DeadLetter("bad customer".into()))
        );
    }

    #[test]
    fn retries_until_the_given_attempt() {
        let msg = |attempt| {
            testing::message("x")
                .attribute("fail", "retry")
                .attribute("succeed-on-attempt", "3")
                .attempt(attempt)
        };
        assert_eq!(testing::run(handle, [msg(2)]).failures().len(), 1);
        assert_eq!(testing::run(handle, [msg(3)]).acked(), ["msg-1"]);
    }

    #[test]
    fn error_fails_the_whole_batch() {
        let report = testing::run(
            handle,
            [
                testing::message("ok"),
                testing::message("e").attribute("fail", "error"),
            ],
        );
        assert_eq!(
            report.error().map(Error::message),
            Some("flaky: message msg-2 asked to fail the batch")
        );
        assert!(report.acked().is_empty());
    }

    #[test]
    fn bad_attributes_fail_the_batch() {
        let report = testing::run(
            handle,
            [testing::message("r")
                .attribute("fail", "retry")
                .attribute("retry-after-ms", "soon")],
        );
        assert_eq!(
            report.error().map(Error::message),
            Some("retry-after-ms: invalid digit found in string")
        );
    }

    #[test]
    fn panic_is_reported() {
        let report = testing::run(handle, [testing::message("p").attribute("fail", "panic")]);
        assert_eq!(
            report.panic_message(),
            Some("flaky: message msg-1 asked to panic")
        );
    }
}
