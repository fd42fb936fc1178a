//! The `floor` phase: the SQLite store's physical floor (its own statements on a bare
//! connection), and the drain's and the saturation's ratios to it when those phases ran.

use std::path::Path;

use crate::BenchArgs;
use crate::floor::{on_floor, sqlite};
use crate::report::Report;

pub(crate) async fn run(report: &mut Report, args: &BenchArgs, dir: &Path) -> anyhow::Result<()> {
    let floor = on_floor(args, dir, sqlite::measure).await?;
    let rate = floor.messages as f64 / floor.drain.as_secs_f64();
    report.add(
        "floor.insert_msgs_per_s",
        floor.messages as f64 / floor.insert.as_secs_f64(),
        "msg/s",
    );
    report.add("floor.drain_msgs_per_s", rate, "msg/s");
    if let Some(drain) = report.get("drain.msgs_per_s") {
        report.target("drain.ratio_to_floor", drain / rate, "x", ">=", 0.5);
    }
    if let (Some(enqueued), Some(handled)) = (
        report.get("saturation.enqueued_msgs_per_s"),
        report.get("saturation.handled_msgs_per_s"),
    ) {
        // Issue 12 asked for 207k enqueued + handled against a 204k floor on its machine:
        // as a ratio, so that it carries to another machine.
        report.target(
            "saturation.enqueued_plus_handled_to_floor",
            (enqueued + handled) / rate,
            "x",
            ">=",
            207.0 / 204.0,
        );
    }
    Ok(())
}
