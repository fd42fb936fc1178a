//! The `order` phase: the drain with priorities, then with ordered groups.

use serde_json::json;
use sluice::store::DEFAULT_PRIORITY;

use crate::components::Components;
use crate::host::Bench;
use crate::report::Report;

/// Groups of the `order` phase's grouped backlog: enough that every batch of the drain's
/// trigger fills (a batch takes one message per group) with `concurrency` batches in flight.
const ORDER_GROUPS: u64 = 1_000;

/// The cost of priorities and ordered groups: the drain's backlog with priorities spread
/// over 0–9, and spread over [`ORDER_GROUPS`] groups, each drained by the same trigger as
/// the plain drain.
pub(crate) async fn run(host: &Bench, report: &mut Report, c: &Components) -> anyhow::Result<()> {
    let a = &host.args;
    host.deploy("bench-sum-order", &c.sum, "").await?;
    for queue in ["bench-priorities", "bench-groups"] {
        host.queue(queue, json!({})).await?;
    }
    host.shaped_backlog("bench-priorities", a.messages, &[], |s| {
        ((s % 10) as u8, None)
    })
    .await?;
    let priorities = host
        .drain_backlog("bench-sum-order", "bench-priorities", a.messages)
        .await?;
    report.add("order.priorities.drain_msgs_per_s", priorities, "msg/s");
    host.shaped_backlog("bench-groups", a.messages, &[], |s| {
        (DEFAULT_PRIORITY, Some(format!("g{}", s % ORDER_GROUPS)))
    })
    .await?;
    let groups = host
        .drain_backlog("bench-sum-order", "bench-groups", a.messages)
        .await?;
    report.add("order.groups.drain_msgs_per_s", groups, "msg/s");
    if let Some(drain) = report.get("drain.msgs_per_s") {
        report.add("order.priorities.to_drain", priorities / drain, "x");
        report.add("order.groups.to_drain", groups / drain, "x");
    }
    Ok(())
}
