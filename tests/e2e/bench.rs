//! `sluice bench --quick` runs every phase end to end and writes valid JSON. It proves the
//! benchmark works; it asserts nothing about speed.

use std::process::Command;

use sluice_test_support::testdb::admin_url;

use crate::support::{example, guest};

/// The components `sluice bench --components` takes, in a temporary directory.
fn components() -> tempfile::TempDir {
    let components = tempfile::tempdir().expect("temp dir");
    for name in ["sum", "reply", "webhook", "counter"] {
        let path = components.path().join(format!("{name}.wasm"));
        std::fs::write(path, example(name)).expect("write");
    }
    for name in ["ok", "trap", "loop", "oom", "recurse"] {
        let path = components.path().join(format!("guest_{name}.wasm"));
        std::fs::write(path, guest(name)).expect("write");
    }
    components
}

/// Runs `sluice bench --quick` with `args` and returns the JSON report's results.
fn quick_bench(args: &[&str]) -> serde_json::Map<String, serde_json::Value> {
    let components = components();
    let json = components.path().join("bench.json");
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["bench", "--quick", "--components"])
        .arg(components.path())
        .arg("--json")
        .arg(&json)
        .args(args)
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
    report["results"].as_object().expect("results").clone()
}

fn assert_measured(results: &serde_json::Map<String, serde_json::Value>, keys: &[&str]) {
    for key in keys {
        let value = results.get(*key).and_then(|r| r["value"].as_f64());
        assert!(
            value.is_some_and(|v| v > 0.0),
            "{key} missing or zero: {results:?}"
        );
    }
}

#[test]
fn quick_bench_runs_and_writes_json() {
    let results = quick_bench(&[]);
    assert_measured(
        &results,
        &[
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
            "e2e.plain_sqlite_msgs_per_s",
            "e2e.sqlite_store_statements_msgs_per_s",
            "e2e.sqlite_contract_minimum_msgs_per_s",
            "e2e.sqlite_contract_by_due_time_to_plain",
            "e2e.plain_sqlite_http_msgs_per_s",
            "e2e.sqlite_contract_minimum_http_to_plain_sqlite",
            "e2e.sluice_to_plain_sqlite_http",
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
        ],
    );
}

/// On PostgreSQL: the host's phases on a scratch database, the strong plain peer beside it, the
/// contract's statements in both table shapes, and one and three `sluice serve` processes.
#[test]
fn quick_bench_on_postgres_measures_the_peers_the_contract_and_the_hosts() {
    let server = admin_url();
    let results = quick_bench(&[
        "--only",
        "e2e,hosts",
        "--database",
        &server,
        "--peer-database",
        &server,
    ]);
    assert_measured(
        &results,
        &[
            "e2e.sluice_msgs_per_s",
            "e2e.plain_sqlite_msgs_per_s",
            "e2e.plain_postgres_msgs_per_s",
            "e2e.sluice_to_plain_postgres",
            "e2e.plain_postgres_http_msgs_per_s",
            "e2e.sluice_to_plain_postgres_http",
            "pg.floor.drain_msgs_per_s",
            "pg.floor.concurrent_msgs_per_s",
            "pg.floor.concurrent_http_msgs_per_s",
            "pg.hosts1.concurrent_ratio_to_http_floor",
            "pg.contract_shape.indexed_drain_msgs_per_s",
            "pg.contract_shape.hot_drain_msgs_per_s",
            "pg.contract_shape.indexed_concurrent_to_floor",
            "pg.hosts1.drain_msgs_per_s",
            "pg.hosts1.drain_last_tenth_to_first",
            "pg.hosts3.concurrent_msgs_per_s",
            "pg.hosts3_to_hosts1.drain_ratio",
        ],
    );
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
