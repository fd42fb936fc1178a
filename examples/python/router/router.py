"""The first link of a chain: parses each message as a JSON order
(``{"id": "o-1", "kind": "book", "amount": 12.5}``) and forwards it, body unchanged, to a queue
chosen by its kind. Messages that are not valid orders are dead-lettered with the reason.
The Python twin of examples/router.

Queues, from the function's environment: ``ROUTE_BOOK`` (default ``orders-books``),
``ROUTE_MUSIC`` (``orders-music``) and ``ROUTE_OTHER`` (``orders-other``, for every other kind).
A send that fails (a queue that does not exist) fails the batch, so nothing is lost: it is
retried whole.
"""

import os
from typing import Mapping

from sluice_sdk import Batch, Outcome, Outgoing


def handle(batch: Batch) -> Outcome:
    routes = Routes(os.environ)
    outcome = Outcome()
    for msg in batch:
        try:
            order = parse_order(msg.json())
        except ValueError as e:
            outcome.dead_letter(msg, e)
            continue
        outgoing = Outgoing(routes.queue_for(order["kind"]), msg.body)
        for name, value in msg.attributes:
            outgoing.attribute(name, value)
        outgoing.attribute("order-id", order["id"]).attribute("kind", order["kind"]).send()
    return outcome


def parse_order(value: object) -> dict:
    """The order, checked: ``id`` and ``kind`` strings and a numeric ``amount`` are required, so
    malformed orders are dead-lettered here, at the start of the chain."""
    if not isinstance(value, dict):
        raise ValueError(f"an order is a JSON object, not {type(value).__name__}")
    for field, kinds in (("id", str), ("kind", str), ("amount", (int, float))):
        if field not in value:
            raise ValueError(f"missing field `{field}`")
        if not isinstance(value[field], kinds) or isinstance(value[field], bool):
            raise ValueError(f"field `{field}` has the wrong type")
    return value


class Routes:
    """Destination queue per kind of order, read from ``env`` with defaults."""

    def __init__(self, env: Mapping[str, str]):
        self.book = env.get("ROUTE_BOOK", "orders-books")
        self.music = env.get("ROUTE_MUSIC", "orders-music")
        self.other = env.get("ROUTE_OTHER", "orders-other")

    def queue_for(self, kind: str) -> str:
        return {"book": self.book, "music": self.music}.get(kind, self.other)
