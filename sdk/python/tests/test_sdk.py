"""The SDK's model, through its native harness: bodies, attributes, outcomes, sends, errors."""

import pytest

from sluice_sdk import DeadLetter, Error, Outcome, Outgoing, Retry, send, send_json, testing


def echo(batch):
    for msg in batch:
        Outgoing("echo", msg.body).attribute("from", msg.id).delay(5).send()


def test_bodies_as_bytes_text_and_json():
    msg = testing.message('{"sku": "A-1"}', id="m-1", attributes={"tenant": "acme"}, attempt=3).build()
    assert msg.body == b'{"sku": "A-1"}'
    assert msg.text() == '{"sku": "A-1"}'
    assert msg.json() == {"sku": "A-1"}
    assert msg.attribute("tenant") == "acme"
    assert msg.attribute("region") is None
    assert (msg.id, msg.queue, msg.attempt) == ("m-1", "test", 3)


def test_bad_bodies_raise_errors_that_say_why():
    with pytest.raises(Error, match="not valid UTF-8"):
        testing.message(b"\xff").build().text()
    with pytest.raises(ValueError, match="^invalid JSON body: "):
        testing.message("nope").build().json()


def test_none_acknowledges_everything():
    report = testing.run(lambda batch: None, [testing.message("a"), testing.message("b")])
    assert report.ok
    assert report.acked == ["msg-1", "msg-2"]
    assert report.sent == []


def test_per_message_retry_and_dead_letter_and_last_mark_wins():
    def handle(batch):
        outcome = Outcome()
        outcome.retry(batch[0], delay_ms=250)
        outcome.retry(batch[1]).dead_letter(batch[1], ValueError("bad"))
        return outcome

    report = testing.run(handle, [testing.message("a"), testing.message("b"), testing.message("c")])
    assert report.acked == ["msg-3"]
    assert report.disposition("msg-1") == Retry(250)
    assert report.disposition("msg-2") == DeadLetter("bad")
    assert report.disposition("msg-3") is None


def test_sends_are_recorded_with_attributes_and_delay():
    report = testing.run(echo, [testing.message("a"), testing.message("b", id="second")])
    assert [m.text() for m in report.committed] == ["a", "b"]
    assert report.sent[1].attribute("from") == "second"
    assert report.sent[0].delay_ms == 5


def test_send_and_send_json():
    def handle(batch):
        send("text", "héllo")
        send_json("json", {"n": 1}, attributes=[("k", "v")])

    report = testing.run(handle, [testing.message("x")])
    assert report.sent[0].body == "héllo".encode()
    assert report.sent[1].json() == {"n": 1}
    assert report.sent[1].attribute("k") == "v"


def test_an_exception_fails_the_batch_and_discards_sends():
    def handle(batch):
        send("q", "x")
        raise Error("database down")

    report = testing.run(handle, [testing.message("a")])
    assert not report.ok
    assert report.error == "database down"
    assert report.acked == []
    assert len(report.sent) == 1
    assert report.committed == []


def test_other_exceptions_are_named_in_the_reason():
    report = testing.run(lambda batch: {}["missing"], [testing.message("a")])
    assert report.error == "KeyError: 'missing'"
    assert isinstance(report.exception, KeyError)


def test_a_handler_returning_something_else_fails_with_a_hint():
    report = testing.run(lambda batch: [], [testing.message("a")])
    assert "return a sluice_sdk.Outcome" in report.error


def test_unknown_queues_fail_and_runs_are_isolated():
    report = testing.run(echo, [testing.message("a")], queues=["other"])
    assert report.error == "queue `echo` does not exist"
    assert testing.run(echo, [testing.message("a")]).ok


def test_send_outside_a_run_says_so():
    with pytest.raises(Error, match="outside a handler run"):
        send("q", "x")


def test_delays_are_checked():
    with pytest.raises(ValueError):
        Outgoing("q").delay(-1)
    with pytest.raises(ValueError):
        Outcome().retry("id", delay_ms=2**32)
