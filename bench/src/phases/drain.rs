//! The `drain` phase: a paused backlog drained through one `sum` trigger.

use serde_json::json;

use crate::components::Components;
use crate::host::Bench;
use crate::report::Report;

pub(crate) async fn run(host: &Bench, report: &mut Report, c: &Components) -> anyhow::Result<()> {
    let a = &host.args;
    host.queue("bench-drain", json!({})).await?;
    host.deploy("bench-sum", &c.sum, "").await?;
    host.trigger(
        "bench-sum",
        "bench-drain",
        a.batch_size,
        a.concurrency,
        true,
    )
    .await?;
    let rate = host
        .drain_once("bench-sum", "bench-drain", a.messages)
        .await?;
    report.target("drain.msgs_per_s", rate, "msg/s", ">=", 100_000.0);
    Ok(())
}
