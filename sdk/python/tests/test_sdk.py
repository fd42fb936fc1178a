"""The SDK's model, through its native harness: bodies, attributes, outcomes, the outbox (sends,
publications, replies, priorities and groups), errors."""

import pytest

from sluice_sdk import (
    DeadLetter,
    Error,
    Outcome,
    Outgoing,
    Publication,
    Reply,
    Retry,
    publish,
    publish_json,
    reply,
    reply_json,
    send,
    send_json,
    testing,
)


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


def test_an_exception_is_shown_with_its_traceback(capsys):
    def handle(batch):
        raise ValueError("the cause")

    report = testing.run(handle, [testing.message("a")])
    assert report.acked == []
    shown = capsys.readouterr().err
    assert "the handler raised" in shown and "ValueError: the cause" in shown, shown
    assert "Traceback (most recent call last)" in shown and "in handle" in shown, shown
    testing.run(lambda batch: None, [testing.message("a")])
    assert capsys.readouterr().err == "", "nothing is printed when the handler returns"


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


def test_messages_carry_priority_and_group():
    msg = testing.message("x", priority=9, group="customer-7").build()
    assert (msg.priority, msg.group) == (9, "customer-7")
    default = testing.message("x").build()
    assert (default.priority, default.group) == (4, None)


def test_sends_carry_priority_and_group():
    def handle(batch):
        send("q", "a", priority=7, group="g-1")
        send_json("q", [1], delay_ms=10)
        Outgoing("q", "c", priority=0, group="g-2").attribute("k", "v").send()

    report = testing.run(handle, [testing.message("x")])
    assert [(m.priority, m.group) for m in report.sent] == [(7, "g-1"), (None, None), (0, "g-2")]
    assert report.sent[1].delay_ms == 10


def test_invalid_priorities_and_groups_fail_as_on_the_host():
    for kwargs, reason in [
        ({"priority": 10}, "invalid message: priority 10 is out of range; give 0 (lowest) to 9 (highest), or leave it out for 4"),
        ({"group": ""}, "invalid message: a group key must be 1 to 128 bytes, not 0"),
        ({"group": "é" * 65}, "invalid message: a group key must be 1 to 128 bytes, not 130"),
        ({"group": "a\nb"}, "invalid message: a group key must not contain control characters"),
    ]:
        report = testing.run(lambda batch: send("q", "x", **kwargs), [testing.message("x")])
        assert report.error == reason


def test_publications_are_recorded_and_committed_with_the_ack():
    def handle(batch):
        publish("orders", "a", [("kind", "book")])
        publish_json("orders", {"n": 1})
        Publication("audit").attribute("who", "me").publish()

    report = testing.run(handle, [testing.message("x")])
    assert [(p.topic, p.body) for p in report.committed_publications] == [
        ("orders", b"a"),
        ("orders", b'{"n":1}'),
        ("audit", b""),
    ]
    assert report.published[0].attribute("kind") == "book"
    assert report.published[1].json() == {"n": 1}
    assert report.published[2].attribute("who") == "me"


def test_unknown_topics_fail_and_a_failed_batch_commits_no_publication():
    assert testing.run(lambda b: publish("nope", "x"), [testing.message("x")], topics=["orders"]).error == (
        "topic `nope` does not exist"
    )

    def handle(batch):
        publish("orders", "x")
        raise Error("later")

    report = testing.run(handle, [testing.message("x")])
    assert len(report.published) == 1
    assert report.committed_publications == []


def test_replies_are_committed_only_for_acknowledged_messages():
    def handle(batch):
        outcome = Outcome()
        reply(batch[0], "pong")
        reply_json(batch[1], {"ok": False})
        Reply.to(batch[2], "three").attribute("status", "done").send()
        return outcome.retry(batch[1])

    report = testing.run(handle, [testing.message("a"), testing.message("b"), testing.message("c")])
    assert [r.message_id for r in report.replies] == ["msg-1", "msg-2", "msg-3"]
    assert [r.message_id for r in report.committed_replies] == ["msg-1", "msg-3"]
    assert report.reply_to("msg-2").json() == {"ok": False}
    assert report.reply_to("msg-3").attribute("status") == "done"
    assert report.reply_to("msg-9") is None


def test_a_message_gets_one_reply_and_only_a_message_of_the_batch():
    def twice(batch):
        reply(batch[0], "1")
        reply(batch[0], "2")

    assert testing.run(twice, [testing.message("a")]).error == (
        "message `msg-1` already has a reply in this invocation; a message gets at most one"
    )
    assert testing.run(lambda b: reply("other", "x"), [testing.message("a")]).error == (
        "message `other` is not in this batch; reply to a message of the batch being handled"
    )


def test_publish_and_reply_outside_a_run_say_so():
    with pytest.raises(Error, match="publish outside a handler run"):
        publish("t", "x")
    with pytest.raises(Error, match="reply outside a handler run"):
        reply("id", "x")
