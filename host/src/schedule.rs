//! Schedules: a cron expression in a time zone that enqueues a message on each tick. This
//! module parses them, computes their ticks, and runs the scheduler loop; the store fires each
//! tick in one transaction that enqueues the message and moves the schedule to its next tick
//! only if it still stands at this one, so a tick fires exactly once across restarts and hosts.
//!
//! Missed ticks (the host was down, or busy) are coalesced: the schedule fires once, for the
//! first tick it missed, with `sluice-schedule-missed` saying how many later ticks were skipped,
//! then continues with the first tick in the future (systemd's `Persistent=true` timers and
//! Kubernetes CronJobs behave the same way).

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone as _};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::store::{self, CatalogChange, ScheduleRecord, Store};

/// The attribute naming the schedule that enqueued a message.
pub const ATTR_SCHEDULE: &str = "sluice-schedule";
/// The tick (ms since the epoch) a scheduled message is for.
pub const ATTR_TICK: &str = "sluice-schedule-tick";
/// How many ticks after this one were missed and coalesced into it.
pub const ATTR_MISSED: &str = "sluice-schedule-missed";

/// Counting missed ticks stops here (a schedule every second that was down for a week).
const MAX_MISSED_COUNTED: u64 = 1_000_000;

/// After a store error, the scheduler looks again this much later.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "invalid cron expression `{cron}`: {reason}; use 5 fields (minute hour day-of-month \
         month day-of-week) or 6 with seconds first, e.g. `*/5 * * * *` or `0 0 9 * * MON-FRI`"
    )]
    Cron { cron: String, reason: String },
    #[error("unknown time zone `{0}`; use an IANA name such as `UTC` or `Europe/Berlin`")]
    TimeZone(String),
    #[error("cron expression `{0}` never fires")]
    NeverFires(String),
}

/// A parsed schedule: its cron expression in its time zone.
#[derive(Debug, Clone)]
pub struct Ticks {
    cron: Cron,
    tz: Tz,
    text: String,
}

impl Ticks {
    /// Parses `cron` (5 fields, or 6 with seconds first) in the IANA time zone `timezone`.
    pub fn parse(cron: &str, timezone: &str) -> Result<Ticks, Error> {
        let tz = Tz::from_str(timezone).map_err(|_| Error::TimeZone(timezone.to_owned()))?;
        let parsed = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(cron)
            .map_err(|e| Error::Cron {
                cron: cron.to_owned(),
                reason: e.to_string(),
            })?;
        let ticks = Ticks {
            cron: parsed,
            tz,
            text: cron.to_owned(),
        };
        ticks.next_after(0)?;
        Ok(ticks)
    }

    /// The first tick strictly after `after_ms` (ms since the epoch).
    pub fn next_after(&self, after_ms: u64) -> Result<u64, Error> {
        let never = || Error::NeverFires(self.text.clone());
        let at: DateTime<Tz> = self
            .tz
            .timestamp_millis_opt(i64::try_from(after_ms).map_err(|_| never())?)
            .single()
            .ok_or_else(never)?;
        let next = self
            .cron
            .find_next_occurrence(&at, false)
            .map_err(|_| never())?;
        u64::try_from(next.timestamp_millis()).map_err(|_| never())
    }

    /// How many ticks fall strictly after `tick_ms` and at or before `now_ms` (capped).
    pub fn missed_after(&self, tick_ms: u64, now_ms: u64) -> u64 {
        let mut missed = 0;
        let mut at = tick_ms;
        while missed < MAX_MISSED_COUNTED {
            match self.next_after(at) {
                Ok(next) if next <= now_ms => {
                    missed += 1;
                    at = next;
                }
                _ => break,
            }
        }
        missed
    }
}

/// Fires every schedule's due ticks through the store until `shutdown`; sleeps until the
/// earliest next tick, and wakes early when schedules change (through any host).
pub async fn run(store: Store, shutdown: CancellationToken) {
    let mut changes = store.events().subscribe();
    loop {
        let wait = match fire_due(&store).await {
            Ok(Some(next_ms)) => {
                Duration::from_millis(next_ms.saturating_sub(store.now_ms()).max(1))
            }
            Ok(None) => Duration::MAX,
            Err(err) => {
                tracing::warn!(error = %err, "schedules: cannot fire due ticks; retrying");
                RETRY_AFTER_ERROR
            }
        };
        let sleep = tokio::time::sleep(wait.min(Duration::from_secs(24 * 60 * 60)));
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = &mut sleep => break,
                change = changes.recv() => match change {
                    Ok(CatalogChange::Schedules | CatalogChange::Everything)
                    | Err(RecvError::Lagged(_)) => break,
                    Ok(_) => {}
                    Err(RecvError::Closed) => return,
                },
            }
        }
    }
}

/// Fires every schedule whose tick has come; answers the earliest tick still ahead.
async fn fire_due(store: &Store) -> store::Result<Option<u64>> {
    let mut earliest: Option<u64> = None;
    for schedule in store.list_schedules().await? {
        let next = match fire_if_due(store, &schedule).await? {
            Some(next) => next,
            None => schedule.next_tick_ms,
        };
        earliest = Some(earliest.map_or(next, |e| e.min(next)));
    }
    Ok(earliest)
}

/// Fires `schedule` if its tick has come; answers its next tick when it moved it.
async fn fire_if_due(store: &Store, schedule: &ScheduleRecord) -> store::Result<Option<u64>> {
    let now = store.now_ms();
    if schedule.next_tick_ms > now {
        return Ok(None);
    }
    let ticks = match Ticks::parse(&schedule.cron, &schedule.timezone) {
        Ok(ticks) => ticks,
        Err(err) => {
            // Refused when it was put; only a database edited by hand gets here.
            tracing::error!(schedule = %schedule.name, error = %err, "schedule cannot be parsed; not firing it");
            return Ok(Some(u64::MAX));
        }
    };
    let tick = schedule.next_tick_ms;
    let missed = ticks.missed_after(tick, now);
    let Ok(next) = ticks.next_after(now) else {
        return Ok(Some(u64::MAX));
    };
    let extra = vec![
        (ATTR_SCHEDULE.to_owned(), schedule.name.clone()),
        (ATTR_TICK.to_owned(), tick.to_string()),
        (ATTR_MISSED.to_owned(), missed.to_string()),
    ];
    match store.fire_schedule(&schedule.name, tick, next, extra).await {
        Ok(Some(enqueued)) => {
            tracing::debug!(schedule = %schedule.name, tick, missed, id = %enqueued.id, "schedule fired");
            metrics::counter!("sluice_schedule_ticks_total", "schedule" => schedule.name.clone())
                .increment(1);
        }
        // Another host fired this tick, or the schedule was changed meanwhile.
        Ok(None) => {}
        Err(err) => {
            tracing::warn!(schedule = %schedule.name, error = %err, "schedule tick not fired");
            return Err(err);
        }
    }
    Ok(Some(next))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: u64 = 60_000;
    /// 2026-01-05 00:00:00 UTC, a Monday.
    const MONDAY: u64 = 1_767_571_200_000;

    #[test]
    fn five_and_six_field_expressions_tick_where_they_should() {
        let every_second = Ticks::parse("* * * * * *", "UTC").unwrap();
        assert_eq!(every_second.next_after(MONDAY).unwrap(), MONDAY + 1_000);
        assert_eq!(every_second.next_after(MONDAY + 1).unwrap(), MONDAY + 1_000);
        let every_five = Ticks::parse("*/5 * * * *", "UTC").unwrap();
        assert_eq!(every_five.next_after(MONDAY).unwrap(), MONDAY + 5 * MINUTE);
        let nine_weekdays = Ticks::parse("0 9 * * MON-FRI", "UTC").unwrap();
        assert_eq!(
            nine_weekdays.next_after(MONDAY).unwrap(),
            MONDAY + 9 * 60 * MINUTE
        );
    }

    #[test]
    fn time_zones_move_the_ticks() {
        let berlin = Ticks::parse("0 9 * * *", "Europe/Berlin").unwrap();
        // 09:00 in Berlin in January is 08:00 UTC.
        assert_eq!(berlin.next_after(MONDAY).unwrap(), MONDAY + 8 * 60 * MINUTE);
    }

    #[test]
    fn missed_ticks_are_counted() {
        let every_second = Ticks::parse("* * * * * *", "UTC").unwrap();
        assert_eq!(every_second.missed_after(MONDAY, MONDAY + 500), 0);
        assert_eq!(every_second.missed_after(MONDAY, MONDAY + 3_000), 3);
    }

    #[test]
    fn an_expression_that_never_fires_is_refused_quickly() {
        let started = std::time::Instant::now();
        let err = Ticks::parse("0 0 30 2 *", "UTC").unwrap_err().to_string();
        assert!(err.contains("never fires"), "{err}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn bad_expressions_and_zones_say_what_to_use() {
        let err = Ticks::parse("every day", "UTC").unwrap_err().to_string();
        assert!(
            err.contains("every day") && err.contains("5 fields"),
            "{err}"
        );
        let err = Ticks::parse("* * * * *", "Mars/Olympus")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Mars/Olympus") && err.contains("IANA"),
            "{err}"
        );
    }
}
