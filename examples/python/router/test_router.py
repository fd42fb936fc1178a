from router import Routes, handle
from sluice_sdk import DeadLetter, testing


def order(id, kind, **kwargs):
    return testing.json_message({"id": id, "kind": kind, "amount": 12.5}, **kwargs)


def test_routes_by_kind_with_the_body_unchanged():
    report = testing.run(
        handle, [order("o-1", "book"), order("o-2", "music", attributes={"tenant": "acme"}), order("o-3", "film")]
    )
    assert report.acked == ["msg-1", "msg-2", "msg-3"]
    assert [m.queue for m in report.committed] == ["orders-books", "orders-music", "orders-other"]
    music = report.sent[1]
    assert music.attribute("tenant") == "acme"
    assert music.attribute("order-id") == "o-2"
    assert music.attribute("kind") == "music"
    assert music.json()["amount"] == 12.5


def test_dead_letters_what_is_not_an_order():
    report = testing.run(
        handle,
        [testing.message("{not json"), testing.message('{"id": "o-1", "kind": "book"}'), order("o-2", "book")],
    )
    assert report.acked == ["msg-3"]
    first = report.disposition("msg-1")
    assert isinstance(first, DeadLetter) and first.reason.startswith("invalid JSON body: "), first
    assert report.disposition("msg-2") == DeadLetter("missing field `amount`")
    assert len(report.sent) == 1


def test_a_missing_queue_fails_the_batch():
    report = testing.run(handle, [order("o-1", "book"), order("o-2", "music")], queues=["orders-books"])
    assert report.error == "queue `orders-music` does not exist"
    assert report.committed == []


def test_routes_come_from_the_environment_with_defaults(monkeypatch):
    routes = Routes({"ROUTE_MUSIC": "vinyl"})
    assert routes.queue_for("book") == "orders-books"
    assert routes.queue_for("music") == "vinyl"
    assert routes.queue_for("anything") == "orders-other"
    monkeypatch.setenv("ROUTE_BOOK", "paper")
    assert testing.run(handle, [order("o-1", "book")]).sent[0].queue == "paper"
