"""The native harness's buckets keep the host's rule: a handler's writes are committed only if
it returns, its reads see its own writes, and it opens only the buckets it lists."""

import pytest

from sluice_sdk import Error, kv, testing


def count(batch):
    counts = kv.open("counts")
    seen = kv.open("seen")
    for msg in batch:
        counts.increment(f"count:{msg.attribute('customer')}")
        seen.set_json(f"seen:{msg.id}", {"at": 1})
    if any(msg.attribute("fail") for msg in batch):
        raise RuntimeError("the downstream is down")


def test_writes_commit_when_the_handler_returns():
    state = testing.Kv({"counts": {"count:acme": "41"}, "seen": {}})
    report = testing.run(count, [testing.message("a", attributes={"customer": "acme"})], kv=state)
    assert report.ok
    assert state.get("counts", "count:acme") == b"42"
    assert state.get("seen", "seen:msg-1") == b'{"at":1}'


def test_a_failed_batch_leaves_no_writes():
    state = testing.Kv(["counts", "seen"])
    messages = [
        testing.message("a", attributes={"customer": "acme"}),
        testing.message("b", attributes={"customer": "acme", "fail": "yes"}),
    ]
    report = testing.run(count, messages, kv=state)
    assert not report.ok
    assert state.buckets == {"counts": {}, "seen": {}}


def test_reads_see_the_invocations_own_writes_then_committed_state():
    def handler(batch):
        bucket = kv.open("b")
        assert bucket.get("old") == b"1"
        bucket.set("new", "2")
        bucket.delete("old")
        assert bucket.get("new") == b"2" and not bucket.exists("old")
        assert list(bucket.keys()) == ["new", "other"]
        assert bucket.increment("n", 5) == 5 and bucket.increment("n") == 6

    state = testing.Kv({"b": {"old": "1", "other": "x"}})
    assert testing.run(handler, [testing.message("x")], kv=state).ok
    assert state.buckets["b"] == {"new": b"2", "other": b"x", "n": b"6"}


def test_only_listed_buckets_open():
    def handler(batch):
        kv.open("secret")

    report = testing.run(handler, [testing.message("x")], kv=testing.Kv(["counts"]))
    assert isinstance(report.exception, kv.Denied)
    assert "kv_buckets" in report.error


def test_buckets_outside_a_run_say_how_to_test_them():
    with pytest.raises(Error, match="testing.run"):
        kv.open("counts")
