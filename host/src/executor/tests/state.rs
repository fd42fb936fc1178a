//! `wasi:keyvalue` at run time, with real components: the `kv` test guest runs the calls its
//! messages list against a real store, and `examples/counter` counts through the SDK. Reads see
//! the invocation's own writes, then committed state; an unlisted bucket is `access-denied`;
//! the writes come back in `Invocation.state` and commit through a real settle only for `ok`.

use std::collections::HashSet;

use super::*;
use crate::store::{Backoff, NewMessage, QueueSettings, StateOp, StateWrite, Store, StoreOptions};

/// A store with the buckets `b`, `counts` and `seen`, `b`'s key `c` committed as `7`, and a queue `in`.
async fn store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    for bucket in ["b", "counts", "seen"] {
        store.put_bucket(bucket, None).await.unwrap();
    }
    operator_set(&store, "c", "7").await;
    store
        .create_queue("in", QueueSettings::default())
        .await
        .unwrap();
    (store, dir)
}

/// Commits `value` to `key` of bucket `b` at once, as an operator's `PUT` does.
async fn operator_set(store: &Store, key: &str, value: &str) {
    let write = StateWrite {
        bucket: "b".into(),
        key: key.into(),
        op: StateOp::Set(value.as_bytes().to_vec()),
        expect: None,
    };
    store.kv_write(vec![write]).await.unwrap();
}

fn granted(buckets: &[&str]) -> Limits {
    Limits {
        kv_buckets: buckets
            .iter()
            .map(|b| b.to_string())
            .collect::<HashSet<_>>(),
        ..limits()
    }
}

async fn run_with(name: &str, store: &Store, limits: &Limits, batch: Vec<Message>) -> Invocation {
    shared()
        .invoke(
            &handler(name),
            limits,
            batch,
            check().reading_state(store.clone()),
        )
        .await
}

/// The `kv` guest's printed results, `<call> => <result>` per line.
fn results(invocation: &Invocation) -> Vec<&str> {
    invocation.logs.lines().collect()
}

#[tokio::test]
async fn reads_see_own_writes_then_committed_state() {
    let (store, _dir) = store().await;
    let script = "\
        open b
        get b c
        set b k v1
        get b k
        exists b k
        inc b c 3
        inc b c 2
        get b c
        inc b n 1
        delete b k
        exists b k
        list b
        cas b c
        swap b c 99
        get b c
        set-many b x=1 y=2
        get-many b x y z
        delete-many b x
        open seen
        open other
        open missing";
    let invocation = run_with(
        "kv",
        &store,
        &granted(&["b", "seen", "missing"]),
        vec![message("1", script, &[])],
    )
    .await;
    assert_eq!(
        invocation.outcome,
        Outcome::Ok(Vec::new()),
        "{}",
        invocation.logs
    );
    assert_eq!(
        results(&invocation),
        [
            "open b => ok",
            "get b c => 7",
            "set b k v1 => ok",
            "get b k => v1",
            "exists b k => true",
            "inc b c 3 => 10",
            "inc b c 2 => 12",
            "get b c => 12",
            "inc b n 1 => 1",
            "delete b k => ok",
            "exists b k => false",
            "list b => keys c,n cursor none",
            "cas b c => 12",
            "swap b c 99 => ok",
            "get b c => 99",
            "set-many b x=1 y=2 => ok",
            "get-many b x y z => x=1,y=2,none",
            "delete-many b x => ok",
            "open seen => ok",
            "open other => access-denied",
            "open missing => no-such-store",
        ]
    );
    let version = store.kv_get("b", "c").await.unwrap().unwrap().version;
    let write = |key: &str, op: StateOp, expect: Option<u64>| StateWrite {
        bucket: "b".into(),
        key: key.into(),
        op,
        expect,
    };
    assert_eq!(
        invocation.state,
        [
            write("c", StateOp::Set(b"99".to_vec()), Some(version)),
            write("k", StateOp::Delete, None),
            write("n", StateOp::Increment(1), None),
            write("x", StateOp::Delete, None),
            write("y", StateOp::Set(b"2".to_vec()), None),
        ],
        "one write per key, the swap expecting the version it read"
    );
    assert_eq!(
        store.kv_get("b", "c").await.unwrap().unwrap().value,
        b"7",
        "nothing is committed by the executor"
    );
}

#[tokio::test]
async fn a_swap_conflicts_at_commit_when_the_key_changed_after_its_read() {
    let (store, _dir) = store().await;
    enqueue(&store, "open b\ncas b c\nswap b c 8\nget b c", &[]).await;
    let lease = store.lease("in", 10, None).await.unwrap().unwrap();
    let invocation = run_with("kv", &store, &granted(&["b"]), lease.messages.clone()).await;
    assert_eq!(
        results(&invocation)[1..],
        ["cas b c => 7", "swap b c 8 => ok", "get b c => 8"]
    );
    // Between the swap and the settle, an operator rewrites the key.
    operator_set(&store, "c", "70").await;
    let settlement = crate::dispatch::settlement(
        &lease.messages,
        invocation,
        &Backoff::default(),
        &mut rand::rng(),
    );
    let error = store.settle(&lease, settlement).await.unwrap_err();
    assert!(
        matches!(error, crate::store::Error::StateConflict(_)),
        "{error:?}"
    );
    assert_eq!(store.kv_get("b", "c").await.unwrap().unwrap().value, b"70");
}

#[tokio::test]
async fn unlisted_buckets_are_denied_and_listed_buckets_that_do_not_exist_are_missing() {
    let (store, _dir) = store().await;
    let invocation = run_with(
        "kv",
        &store,
        &granted(&[]),
        vec![message("1", "open b\nopen seen", &[])],
    )
    .await;
    assert_eq!(
        results(&invocation),
        ["open b => access-denied", "open seen => access-denied"]
    );
    assert!(invocation.state.is_empty());
}

/// Leases `in`, runs `name` on the batch, settles as the dispatcher would; returns the outcome.
async fn deliver(name: &str, store: &Store, limits: &Limits) -> Outcome {
    let lease = store.lease("in", 10, None).await.unwrap().expect("a batch");
    let invocation = run_with(name, store, limits, lease.messages.clone()).await;
    let outcome = invocation.outcome.clone();
    let settlement = crate::dispatch::settlement(
        &lease.messages,
        invocation,
        &Backoff::default(),
        &mut rand::rng(),
    );
    store.settle(&lease, settlement).await.unwrap();
    outcome
}

async fn enqueue(store: &Store, body: &str, attributes: &[(&str, &str)]) {
    let message = NewMessage {
        body: body.as_bytes().to_vec(),
        attributes: attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..NewMessage::default()
    };
    store.enqueue("in", vec![message]).await.unwrap();
}

#[tokio::test]
async fn writes_commit_with_an_ok_and_an_err_or_a_trap_leaves_nothing() {
    let (store, _dir) = store().await;
    let limits = Limits {
        timeout: Duration::from_secs(10),
        ..granted(&["b"])
    };
    let script = "open b\ninc b c 1\nset b k written";
    for end in ["err", "trap"] {
        enqueue(&store, script, &[("end", end)]).await;
        let outcome = deliver("kv", &store, &limits).await;
        assert!(!matches!(outcome, Outcome::Ok(_)), "{end}: {outcome:?}");
        assert_eq!(
            store.kv_get("b", "c").await.unwrap().unwrap().value,
            b"7",
            "{end}"
        );
        assert_eq!(store.kv_get("b", "k").await.unwrap(), None, "{end}");
        store.purge("in").await.unwrap();
    }
    enqueue(&store, script, &[]).await;
    assert_eq!(
        deliver("kv", &store, &limits).await,
        Outcome::Ok(Vec::new())
    );
    assert_eq!(store.kv_get("b", "c").await.unwrap().unwrap().value, b"8");
    assert_eq!(
        store.kv_get("b", "k").await.unwrap().unwrap().value,
        b"written"
    );
}

/// Where `examples/` built `counter.wasm`, prepared once.
fn counter() -> Handler {
    static COUNTER: OnceLock<Handler> = OnceLock::new();
    COUNTER
        .get_or_init(|| {
            let examples = sluice_test_support::guests::build("examples", None)
                .unwrap_or_else(|e| panic!("{e}"));
            let wasm = std::fs::read(examples.join("counter.wasm")).unwrap();
            shared().prepare(&wasm).unwrap()
        })
        .clone()
}

#[tokio::test]
async fn the_counter_example_counts_per_customer_through_the_sdk() {
    let (store, _dir) = store().await;
    let batch = vec![
        message("1", "{}", &[("customer", "acme")]),
        message("2", "{}", &[("customer", "acme")]),
        message("3", "{}", &[]),
    ];
    let invocation = shared()
        .invoke(
            &counter(),
            &granted(&["counts", "seen"]),
            batch.clone(),
            check().reading_state(store.clone()),
        )
        .await;
    let Outcome::Ok(failures) = &invocation.outcome else {
        panic!("{:?}\n{}", invocation.outcome, invocation.logs);
    };
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].id, "3");
    assert!(
        matches!(&failures[0].disposition, Disposition::DeadLetter(r) if r.starts_with("no `customer` attribute")),
        "{failures:?}"
    );
    assert!(
        invocation
            .logs
            .contains("1: count:acme = 1\n2: count:acme = 2\n"),
        "the second increment sees the first: {}",
        invocation.logs
    );
    let ops: Vec<(&str, &str, &StateOp)> = (invocation.state.iter())
        .map(|w| (w.bucket.as_str(), w.key.as_str(), &w.op))
        .collect();
    assert_eq!(
        ops,
        [
            ("counts", "count:acme", &StateOp::Increment(2)),
            ("seen", "seen:1", &StateOp::Set(b"acme".to_vec())),
            ("seen", "seen:2", &StateOp::Set(b"acme".to_vec())),
        ]
    );

    let denied = shared()
        .invoke(
            &counter(),
            &granted(&["counts"]),
            batch,
            check().reading_state(store.clone()),
        )
        .await;
    match &denied.outcome {
        Outcome::Error(reason) => assert!(reason.contains("`--kv seen`"), "{reason}"),
        other => panic!("{other:?}"),
    }
}
