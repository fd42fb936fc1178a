from log_handler import describe, handle
from sluice_sdk import testing


def test_describes_a_message():
    msg = testing.message(
        "hello", id="m-1", queue="events", attempt=2, attributes=[("tenant", "acme"), ("source", "web")]
    ).build()
    assert describe(msg) == "message m-1 from events (attempt 2) [tenant=acme, source=web]: hello"


def test_binary_bodies_are_printed_lossily():
    assert describe(testing.message(b"a\xff").build()).endswith("[]: a\ufffd")


def test_acknowledges_everything_and_sends_nothing(capsys):
    report = testing.run(handle, [testing.message("a"), testing.message("b")])
    assert report.acked == ["msg-1", "msg-2"]
    assert report.sent == []
    assert capsys.readouterr().out.count("message msg-") == 2


def test_a_fail_attribute_raises_failing_the_batch_with_its_text():
    report = testing.run(handle, [testing.message("a"), testing.message("b", attributes={"fail": "tenant acme is suspended"})])
    assert report.error == "RuntimeError: tenant acme is suspended"
    assert report.acked == []
