"""Write Sluice queue handlers in Python.

A handler is a function from a :class:`Batch` of messages to an :class:`Outcome` (or ``None``,
which acknowledges the whole batch). ``scripts/build-python`` turns the module that defines it
into a WebAssembly component the Sluice host calls once per batch, in a fresh instance::

    from sluice_sdk import Batch, Outcome, send_json

    def handle(batch: Batch) -> Outcome:
        outcome = Outcome()
        for msg in batch:
            try:
                order = msg.json()
            except ValueError as e:
                outcome.dead_letter(msg, str(e))
                continue
            if order["amount"] >= 100:
                send_json("big-orders", order["id"])
        return outcome

What the host does with the result:

- a returned :class:`Outcome` (or ``None``): every message not marked in it is acknowledged;
  marked ones are retried (after the queue's backoff or a delay you choose) or dead-lettered
  with a reason. Everything sent (:func:`send`, :class:`Outgoing`), published (:func:`publish`,
  :class:`Publication`) and replied (:func:`reply`, :class:`Reply`) is committed in the same
  transaction as the acknowledgement; a reply only if the message it answers is acknowledged.
- an exception: the whole batch is retried and everything sent, published and replied is
  discarded; the exception's message is the invocation's reason and its traceback is in the
  invocation's log.

:mod:`sluice_sdk.http` calls HTTP APIs outside Sluice (the hosts the function's version allows);
:mod:`sluice_sdk.testing` runs a handler natively (in pytest) without a host, HTTP stubbed.
The SDK targets the WIT world ``sluice:queue/handler@0.4.0``.
"""

from __future__ import annotations

import json as _json
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Sequence, Union

__all__ = [
    "Batch",
    "DeadLetter",
    "Error",
    "Failure",
    "Message",
    "Outcome",
    "Outgoing",
    "Publication",
    "Reply",
    "Retry",
    "publish",
    "publish_json",
    "reply",
    "reply_json",
    "send",
    "send_json",
]

Body = Union[bytes, bytearray, memoryview, str]


class Error(Exception):
    """Raise to fail the whole batch with this message (any exception does the same)."""


@dataclass(frozen=True)
class Message:
    """One message delivered to a handler.

    On WebAssembly the host builds these; in tests :func:`sluice_sdk.testing.message` does.
    """

    id: str
    """Unique within the host and stable across redeliveries."""
    queue: str
    """The queue the message was leased from."""
    body: bytes
    """The raw body, exactly as the producer sent it."""
    attributes: tuple[tuple[str, str], ...] = ()
    """``(name, value)`` pairs, in the order the producer gave them."""
    attempt: int = 1
    """How many times it has been delivered, this delivery included (1 on the first)."""
    enqueued_at_ms: int = 0
    """When the producer's enqueue was committed, in milliseconds since the Unix epoch."""
    priority: int = 4
    """0 (lowest) to 9 (highest); 4 unless the producer gave one. A batch takes higher priorities first."""
    group: Optional[str] = None
    """The ordered group the message belongs to, if any: a group's messages are delivered one at
    a time, in enqueue order."""

    def text(self) -> str:
        """The body as text; raises :class:`Error` if it is not UTF-8."""
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise Error(f"body is not valid UTF-8: {e}") from None

    def json(self) -> Any:
        """The body parsed as JSON; raises :class:`Error` (a ``ValueError`` too) if it does not parse."""
        try:
            return _json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidJson(f"invalid JSON body: {e}") from None

    def attribute(self, name: str) -> Optional[str]:
        """The value of the first attribute called ``name``, or ``None``."""
        for key, value in self.attributes:
            if key == name:
                return value
        return None


class InvalidJson(Error, ValueError):
    """The body of a message is not valid JSON (see :meth:`Message.json`)."""


class Batch(Sequence[Message]):
    """The messages of one invocation, in delivery order; iterate it, index it, take its ``len``."""

    def __init__(self, messages: Sequence[Message]):
        self._messages = list(messages)

    def __iter__(self) -> Iterator[Message]:
        return iter(self._messages)

    def __len__(self) -> int:
        return len(self._messages)

    def __getitem__(self, index):  # type: ignore[override]
        return self._messages[index]

    def __repr__(self) -> str:
        return f"Batch({self._messages!r})"


@dataclass(frozen=True)
class Retry:
    """Deliver the message again: after ``delay_ms``, or the queue's backoff when ``None``."""

    delay_ms: Optional[int] = None


@dataclass(frozen=True)
class DeadLetter:
    """Move the message to the queue's dead-letter queue now, with this reason."""

    reason: str


Disposition = Union[Retry, DeadLetter]


@dataclass(frozen=True)
class Failure:
    """A message the handler marked as failed, and what to do with it."""

    id: str
    disposition: Disposition


@dataclass
class Outcome:
    """What a handler returns for a batch that did not fail as a whole.

    Every message not marked is acknowledged. Marking a message again replaces its disposition.
    """

    _failures: dict[str, Disposition] = field(default_factory=dict)

    def retry(self, msg: Union[Message, str], delay_ms: Optional[int] = None) -> "Outcome":
        """Retry ``msg`` after ``delay_ms`` (or the queue's backoff). Returns ``self``."""
        if delay_ms is not None and not 0 <= delay_ms <= 0xFFFF_FFFF:
            raise ValueError(f"delay_ms must be between 0 and 4294967295, not {delay_ms}")
        return self._mark(msg, Retry(delay_ms))

    def dead_letter(self, msg: Union[Message, str], reason: object) -> "Outcome":
        """Dead-letter ``msg`` with ``reason`` (turned into text). Returns ``self``."""
        return self._mark(msg, DeadLetter(str(reason)))

    @property
    def failures(self) -> list[Failure]:
        """The marked messages, in the order they were first marked."""
        return [Failure(id, d) for id, d in self._failures.items()]

    def _mark(self, msg: Union[Message, str], disposition: Disposition) -> "Outcome":
        self._failures[msg if isinstance(msg, str) else msg.id] = disposition
        return self


@dataclass
class Outgoing:
    """A message to another queue, built up and then :meth:`send`-ed::

        Outgoing("emails", body=b"...", priority=7, group="ada@example.com").attribute(
            "tenant", "acme"
        ).delay(60_000).send()

    ``priority`` is 0 (lowest) to 9 (highest), ``None`` for the queue's default (4). ``group``
    puts the message in an ordered group (1 to 128 bytes, no control characters): a group's
    messages are delivered one at a time, in the order they were committed.
    """

    queue: str
    body: Body = b""
    attributes: list[tuple[str, str]] = field(default_factory=list)
    delay_ms: int = 0
    priority: Optional[int] = None
    group: Optional[str] = None

    def attribute(self, name: str, value: str) -> "Outgoing":
        """Adds an attribute. Returns ``self``."""
        self.attributes.append((str(name), str(value)))
        return self

    def delay(self, delay_ms: int) -> "Outgoing":
        """Keeps the message invisible for ``delay_ms`` after it is committed. Returns ``self``."""
        if not 0 <= delay_ms <= 0xFFFF_FFFF:
            raise ValueError(f"delay_ms must be between 0 and 4294967295, not {delay_ms}")
        self.delay_ms = delay_ms
        return self

    def send(self) -> None:
        """Hands the message to the host's outbox; raises :class:`Error` if the host refuses it
        (the queue does not exist, the priority or group is invalid, a send limit is reached)."""
        from . import _outbox

        _outbox.send(self.queue, _bytes(self.body), list(self.attributes), self.delay_ms, self.priority, self.group)


def send(
    queue: str,
    body: Body,
    attributes: Sequence[tuple[str, str]] = (),
    delay_ms: int = 0,
    *,
    priority: Optional[int] = None,
    group: Optional[str] = None,
) -> None:
    """Sends ``body`` (bytes, or text sent as UTF-8) to ``queue``; see :class:`Outgoing`."""
    Outgoing(queue, body, list(attributes), priority=priority, group=group).delay(delay_ms).send()


def send_json(
    queue: str,
    value: Any,
    attributes: Sequence[tuple[str, str]] = (),
    delay_ms: int = 0,
    *,
    priority: Optional[int] = None,
    group: Optional[str] = None,
) -> None:
    """Sends ``value`` serialized as JSON to ``queue``; see :class:`Outgoing`."""
    send(queue, _to_json(value), attributes, delay_ms, priority=priority, group=group)


@dataclass
class Publication:
    """A message to publish to a topic: when the batch is acknowledged, a copy goes to every
    subscription of ``topic`` whose filter matches its attributes::

        Publication("orders", body=b"...").attribute("kind", "book").publish()
    """

    topic: str
    body: Body = b""
    attributes: list[tuple[str, str]] = field(default_factory=list)

    def attribute(self, name: str, value: str) -> "Publication":
        """Adds an attribute (subscription filters match on them). Returns ``self``."""
        self.attributes.append((str(name), str(value)))
        return self

    def publish(self) -> None:
        """Hands the publication to the host's outbox; raises :class:`Error` if the host refuses
        it (the topic does not exist, a send limit is reached)."""
        from . import _outbox

        _outbox.publish(self.topic, _bytes(self.body), list(self.attributes))


def publish(topic: str, body: Body, attributes: Sequence[tuple[str, str]] = ()) -> None:
    """Publishes ``body`` (bytes, or text sent as UTF-8) to ``topic``; see :class:`Publication`."""
    Publication(topic, body, list(attributes)).publish()


def publish_json(topic: str, value: Any, attributes: Sequence[tuple[str, str]] = ()) -> None:
    """Publishes ``value`` serialized as JSON to ``topic``."""
    publish(topic, _to_json(value), attributes)


@dataclass
class Reply:
    """The answer to one message of the batch, for the producer waiting on it (one that enqueued
    with ``Sluice-Reply-Timeout-Ms``). It is committed only with the acknowledgement of that
    message: if the message is retried or dead-lettered, or the batch fails, it is discarded::

        Reply.to(msg, body=b"...").attribute("status", "done").send()
    """

    message_id: str
    body: Body = b""
    attributes: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def to(cls, message: Union[Message, str], body: Body = b"") -> "Reply":
        """A reply to ``message`` (a :class:`Message` of the batch, or its id)."""
        return cls(message if isinstance(message, str) else message.id, body)

    def attribute(self, name: str, value: str) -> "Reply":
        """Adds an attribute; the waiting producer gets it with the reply. Returns ``self``."""
        self.attributes.append((str(name), str(value)))
        return self

    def send(self) -> None:
        """Hands the reply to the host's outbox; raises :class:`Error` if the host refuses it (the
        message is not in this batch or already has a reply, a send limit is reached)."""
        from . import _outbox

        _outbox.reply(self.message_id, _bytes(self.body), list(self.attributes))


def reply(message: Union[Message, str], body: Body, attributes: Sequence[tuple[str, str]] = ()) -> None:
    """Replies ``body`` (bytes, or text sent as UTF-8) to ``message``; see :class:`Reply`."""
    Reply(message if isinstance(message, str) else message.id, body, list(attributes)).send()


def reply_json(message: Union[Message, str], value: Any, attributes: Sequence[tuple[str, str]] = ()) -> None:
    """Replies ``value``, serialized as JSON, to ``message``."""
    reply(message, _to_json(value), attributes)


def _to_json(value: Any) -> str:
    return _json.dumps(value, separators=(",", ":"))


def _bytes(body: Body) -> bytes:
    if isinstance(body, str):
        return body.encode("utf-8")
    return bytes(body)
