"""A native test harness: run a handler in pytest, without a host or WebAssembly.

Build messages with :func:`message` (or :func:`json_message`), run the handler with :func:`run`,
and inspect the :class:`Report`: what was acknowledged, retried or dead-lettered, the exception
that failed the batch, and what the handler sent::

    from sluice_sdk import testing

    def test_upper():
        report = testing.run(handle, [testing.message("hi"), testing.message(b"\\xff")])
        assert report.acked == ["msg-1"]
        assert report.sent[0].queue == "upper"
"""

from __future__ import annotations

import json as _json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Union

from . import Batch, DeadLetter, Error, Failure, Message, Retry, _bytes, _outbox
from ._component import reason, to_failures

__all__ = ["Report", "SentMessage", "TestMessage", "json_message", "message", "run"]


@dataclass
class TestMessage:
    """A message to put in a test batch; ``id`` defaults to ``msg-N`` (its 1-based position)."""

    __test__ = False  # not a pytest test class

    body: bytes
    id: Optional[str] = None
    queue: str = "test"
    attributes: list[tuple[str, str]] = field(default_factory=list)
    attempt: int = 1
    enqueued_at_ms: Optional[int] = None

    def build(self, position: int = 1) -> Message:
        """The :class:`~sluice_sdk.Message` a handler would receive at this 1-based position."""
        at = self.enqueued_at_ms if self.enqueued_at_ms is not None else int(time.time() * 1000)
        return Message(
            self.id or f"msg-{position}", self.queue, self.body, tuple(self.attributes), self.attempt, at
        )


def message(
    body: Union[bytes, str],
    *,
    id: Optional[str] = None,
    queue: str = "test",
    attributes: Union[dict[str, str], Iterable[tuple[str, str]]] = (),
    attempt: int = 1,
    enqueued_at_ms: Optional[int] = None,
) -> TestMessage:
    """A test message with this body (text is encoded as UTF-8)."""
    pairs = list(attributes.items()) if isinstance(attributes, dict) else list(attributes)
    return TestMessage(_bytes(body), id, queue, pairs, attempt, enqueued_at_ms)


def json_message(value: Any, **kwargs: Any) -> TestMessage:
    """A test message whose body is ``value`` as JSON; keyword arguments as for :func:`message`."""
    return message(_json.dumps(value), **kwargs)


@dataclass(frozen=True)
class SentMessage:
    """A message the handler sent during a run."""

    queue: str
    body: bytes
    attributes: list[tuple[str, str]]
    delay_ms: int

    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return _json.loads(self.body)

    def attribute(self, name: str) -> Optional[str]:
        return next((v for k, v in self.attributes if k == name), None)


@dataclass
class Report:
    """What happened in a run; see :func:`run`."""

    ids: list[str]
    failures: list[Failure]
    """The messages the handler marked (empty when the batch failed as a whole)."""
    error: Optional[str]
    """The reason the batch failed as a whole, as the host records it; ``None`` if it did not."""
    exception: Optional[BaseException]
    """The exception that failed the batch, if any."""
    sent: list[SentMessage]
    """Every message sent, in order, whether or not the host would commit them."""

    @property
    def ok(self) -> bool:
        """Whether the handler returned (some messages may still have failed)."""
        return self.error is None

    @property
    def acked(self) -> list[str]:
        """The ids of the acknowledged messages, in batch order (none if the batch failed)."""
        if not self.ok:
            return []
        failed = {f.id for f in self.failures}
        return [id for id in self.ids if id not in failed]

    @property
    def committed(self) -> list[SentMessage]:
        """What the host would commit: everything sent if the handler returned, else nothing."""
        return self.sent if self.ok else []

    def disposition(self, id: str) -> Union[Retry, DeadLetter, None]:
        """What the handler asked for message ``id``; ``None`` if it was acknowledged."""
        return next((f.disposition for f in self.failures if f.id == id), None)


def run(
    handler: Callable[[Batch], Any],
    messages: Iterable[Union[TestMessage, Message]],
    *,
    queues: Optional[Iterable[str]] = None,
) -> Report:
    """Runs ``handler`` on one batch of ``messages`` and reports what happened.

    With ``queues``, only those queues exist: a send to any other raises, as it does on the host.
    An exception from the handler is caught and reported, as the host reports it.
    """
    batch = Batch(
        [m.build(i) if isinstance(m, TestMessage) else m for i, m in enumerate(messages, start=1)]
    )
    known = None if queues is None else set(queues)
    sent: list[SentMessage] = []

    def record(queue: str, body: bytes, attributes: list, delay_ms: int) -> None:
        if known is not None and queue not in known:
            raise Error(f"queue `{queue}` does not exist")
        sent.append(SentMessage(queue, body, list(attributes), delay_ms))

    previous, _outbox.recorder = _outbox.recorder, record
    try:
        failures = to_failures(handler(batch))
        error, exception = None, None
    except Exception as e:  # noqa: BLE001 - reported, like the host does
        failures, error, exception = [], reason(e), e
    finally:
        _outbox.recorder = previous
    return Report([m.id for m in batch], failures, error, exception, sent)
