//! `sluice bench --quick` runs every phase end to end and writes valid JSON. It proves the
//! benchmark works; it asserts nothing about speed.

use std::process::Command;

use crate::support::{example, guest};

#[test]
fn quick_bench_runs_and_writes_json() {
    let components = tempfile::tempdir().expect("temp dir");
    std::fs::write(components.path().join("sum.wasm"), example("sum")).expect("write");
    std::fs::write(components.path().join("reply.wasm"), example("reply")).expect("write");
    std::fs::write(components.path().join("webhook.wasm"), example("webhook")).expect("write");
    std::fs::write(components.path().join("counter.wasm"), example("counter")).expect("write");
    for name in ["ok", "trap", "loop", "oom", "recurse"] {
        let path = components.path().join(format!("guest_{name}.wasm"));
        std::fs::write(path, guest(name)).expect("write");
    }
    let json = components.path().join("bench.json");
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["bench", "--quick", "--components"])
        .arg(components.path())
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run sluice bench");
    assert!(
        output.status.success(),
        "sluice bench --quick failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("bench.json written"))
            .expect("bench.json is JSON");
    let results = report["results"].as_object().expect("results");
    for key in [
        "enqueue.batch_msgs_per_s",
        "enqueue.single_msgs_per_s",
        "drain.msgs_per_s",
        "sqs.receive_delete_batch_msgs_per_s",
        "steady.commit_to_start_lower.p99",
        "saturation.handled_to_enqueued",
        "saturation.enqueued_plus_handled_to_floor",
        "latency.single.send_to_start.p99",
        "latency.batch_10.send_to_start.p99",
        "backlog.rss_peak_mib",
        "backlog.drain_to_drain_phase",
        "chain.msgs_per_s",
        "e2e.sluice_msgs_per_s",
        "e2e.sqlite_in_process_msgs_per_s",
        "topics.fanout_10.publish_msgs_per_s",
        "order.groups.drain_msgs_per_s",
        "reply.round_trip.p99",
        "overhead.batch_1.p50_us",
        "outbound.invocations_per_s",
        "outbound.noop_batch_1_drain_per_s",
        "outbound.max_threads",
        "state.counter_drain_per_s",
        "state.to_noop",
        "state.set_get_round_trip_us",
        "floor.drain_msgs_per_s",
        "hostile.ratio",
        "depth.peek_tail.p99",
        "depth.stats.p99",
        "depth.other_enqueue_during_purge.p99",
    ] {
        let value = results[key]["value"].as_f64();
        assert!(
            value.is_some_and(|v| v > 0.0),
            "{key} missing or zero: {report}"
        );
    }
}

#[test]
fn a_misspelled_phase_is_an_error_that_lists_the_phases() {
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["bench", "--only", "drain,drian"])
        .output()
        .expect("run sluice bench");
    assert!(!output.status.success(), "`--only drian` was accepted");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("drian") && stderr.contains("possible values") && stderr.contains("e2e"),
        "the error names the phase and lists the valid ones:\n{stderr}"
    );
}
