"""The counter through the SDK's native harness: counts commit only when the batch does."""

from counter import handle
from sluice_sdk import testing


def test_counts_per_customer_and_remembers_each_message():
    state = testing.Kv(["counts", "seen"])
    messages = [
        testing.message("a", attributes={"customer": "acme"}),
        testing.message("b", attributes={"customer": "acme"}),
        testing.message("c", attributes={"customer": "zeta"}),
    ]
    report = testing.run(handle, messages, kv=state)
    assert report.acked == ["msg-1", "msg-2", "msg-3"]
    assert state.get("counts", "count:acme") == b"2"
    assert state.get("counts", "count:zeta") == b"1"
    assert state.get("seen", "seen:msg-3") == b"1"


def test_a_message_without_a_customer_is_dead_lettered_and_the_rest_counted():
    state = testing.Kv(["counts", "seen"])
    report = testing.run(handle, [testing.message("a"), testing.message("b", attributes={"customer": "acme"})], kv=state)
    assert "customer" in report.disposition("msg-1").reason
    assert state.get("counts", "count:acme") == b"1"
