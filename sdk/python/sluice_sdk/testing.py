"""A native test harness: run a handler in pytest, without a host or WebAssembly.

Build messages with :func:`message` (or :func:`json_message`), run the handler with :func:`run`,
and inspect the :class:`Report`: what was acknowledged, retried or dead-lettered, the exception
that failed the batch, and what the handler sent, published, replied and requested over HTTP::

    from sluice_sdk import testing

    def test_upper():
        report = testing.run(handle, [testing.message("hi"), testing.message(b"\\xff")])
        assert report.acked == ["msg-1"]
        assert report.sent[0].queue == "upper"

The outbox checks what the host checks: a destination must exist (with ``queues`` / ``topics``),
a priority is 0 to 9, a group key 1 to 128 bytes without control characters, and a message of
the batch gets at most one reply. There is no network: :mod:`sluice_sdk.http` answers from the
stubs of an :class:`Http` (per URL or URL prefix, responses or ``wasi:http`` errors), and a
request to anything not stubbed fails the test with :class:`UnstubbedRequest`::

    stubs = testing.Http().stub("https://hooks.example.com/a", status=503, headers={"Retry-After": "30"})
    report = testing.run(handle, [msg], http=stubs)
    assert report.requests[0].header("idempotency-key") == "msg-1"

Key-value buckets live in a :class:`Kv` passed as ``kv=``; the handler may open only its
buckets, and its writes reach them only if it returns, as on the host::

    state = testing.Kv(["counts"])
    testing.run(handle, [testing.message("x", attributes={"customer": "acme"})], kv=state)
    assert state.get("counts", "count:acme") == b"1"
"""

from __future__ import annotations

import json as _json
import sys
import time
import traceback
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional, Union

from . import Batch, DeadLetter, Error, Failure, Message, Retry, _bytes, _outbox, http, kv as _kv_module
from ._component import reason, to_failures

__all__ = [
    "Http",
    "Kv",
    "PublishedMessage",
    "ReplyMessage",
    "Report",
    "SentMessage",
    "SentRequest",
    "TestMessage",
    "UnstubbedRequest",
    "json_message",
    "message",
    "run",
]

MAX_PRIORITY = 9
DEFAULT_PRIORITY = 4
MAX_GROUP_BYTES = 128


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
    priority: int = DEFAULT_PRIORITY
    group: Optional[str] = None

    def build(self, position: int = 1) -> Message:
        """The :class:`~sluice_sdk.Message` a handler would receive at this 1-based position."""
        at = self.enqueued_at_ms if self.enqueued_at_ms is not None else int(time.time() * 1000)
        return Message(
            self.id or f"msg-{position}",
            self.queue,
            self.body,
            tuple(self.attributes),
            self.attempt,
            at,
            self.priority,
            self.group,
        )


def message(
    body: Union[bytes, str],
    *,
    id: Optional[str] = None,
    queue: str = "test",
    attributes: Union[dict[str, str], Iterable[tuple[str, str]]] = (),
    attempt: int = 1,
    enqueued_at_ms: Optional[int] = None,
    priority: int = DEFAULT_PRIORITY,
    group: Optional[str] = None,
) -> TestMessage:
    """A test message with this body (text is encoded as UTF-8)."""
    pairs = list(attributes.items()) if isinstance(attributes, dict) else list(attributes)
    return TestMessage(_bytes(body), id, queue, pairs, attempt, enqueued_at_ms, priority, group)


def json_message(value: Any, **kwargs: Any) -> TestMessage:
    """A test message whose body is ``value`` as JSON; keyword arguments as for :func:`message`."""
    return message(_json.dumps(value), **kwargs)


class _Body:
    body: bytes
    attributes: list[tuple[str, str]]

    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return _json.loads(self.body)

    def attribute(self, name: str) -> Optional[str]:
        return next((v for k, v in self.attributes if k == name), None)


@dataclass(frozen=True)
class SentMessage(_Body):
    """A message the handler sent during a run."""

    queue: str
    body: bytes
    attributes: list[tuple[str, str]]
    delay_ms: int
    priority: Optional[int] = None
    """As given to the send: ``None`` means the queue's default (4)."""
    group: Optional[str] = None


@dataclass(frozen=True)
class PublishedMessage(_Body):
    """A message the handler published to a topic during a run."""

    topic: str
    body: bytes
    attributes: list[tuple[str, str]]


@dataclass(frozen=True)
class ReplyMessage(_Body):
    """A reply the handler made during a run."""

    message_id: str
    body: bytes
    attributes: list[tuple[str, str]]


@dataclass(frozen=True)
class SentRequest:
    """An HTTP request the handler made during a run (stubbed or not)."""

    method: str
    url: str
    headers: http.Headers
    body: bytes
    timeout: Optional[float]
    """The ``timeout`` the handler gave, in seconds."""

    def header(self, name: str) -> Optional[str]:
        """The value of header ``name`` (any case), its values joined with ``", "``; ``None`` if absent."""
        return self.headers.get(name)

    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return _json.loads(self.body)


class UnstubbedRequest(AssertionError):
    """A handler requested a URL that no stub of the run's :class:`Http` answers. :func:`run`
    raises it even when the handler caught it, so the test fails and names the URL."""


@dataclass(frozen=True)
class _Stub:
    url: str
    prefix: bool
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    error: Optional[str]


class Http:
    """The HTTP world of a run: which URLs answer what. Each method returns ``self``::

        testing.Http()
            .stub("https://api.example.com/orders/1", json={"id": 1})
            .stub_prefix("https://api.example.com/", status=404)
            .stub_prefix("https://flaky.example.com/", error="connection-refused")
            .stub_prefix("https://evil.example.com/", error="HTTP-request-denied")

    A request takes the stub of its exact URL, else the one with the longest matching prefix.
    """

    def __init__(self) -> None:
        self._stubs: list[_Stub] = []

    def stub(
        self,
        url: str,
        status: int = 200,
        *,
        body: Union[bytes, str] = b"",
        json: Any = None,
        headers: Union[Mapping[str, str], Iterable[tuple[str, str]]] = (),
        error: Optional[str] = None,
    ) -> "Http":
        """Answers requests to exactly ``url`` with this response, or fails them with ``error``,
        a ``wasi:http`` error-code as WIT spells it (``"connection-refused"``,
        ``"HTTP-request-denied"``, ``"connection-timeout"``, ...; see :data:`sluice_sdk.http.ERROR_CODES`),
        raising what the real client raises (:class:`~sluice_sdk.http.Denied`,
        :class:`~sluice_sdk.http.Timeout`, ...)."""
        return self._add(url, False, status, body, json, headers, error)

    def stub_prefix(
        self,
        prefix: str,
        status: int = 200,
        *,
        body: Union[bytes, str] = b"",
        json: Any = None,
        headers: Union[Mapping[str, str], Iterable[tuple[str, str]]] = (),
        error: Optional[str] = None,
    ) -> "Http":
        """Like :meth:`stub`, for every URL that starts with ``prefix``."""
        return self._add(prefix, True, status, body, json, headers, error)

    def _add(self, url, prefix, status, body, json, headers, error) -> "Http":
        if error is not None and error not in http.ERROR_CODES:
            raise ValueError(f"unknown wasi:http error-code {error!r}; one of: {', '.join(http.ERROR_CODES)}")
        if not 100 <= status <= 999:
            raise ValueError(f"invalid status {status}")
        pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        if json is not None:
            body = _json.dumps(json)
            if not any(k.lower() == "content-type" for k, _ in pairs):
                pairs.append(("content-type", "application/json"))
        self._stubs.append(_Stub(url, prefix, status, tuple(pairs), _bytes(body), error))
        return self

    def _find(self, url: str) -> Optional[_Stub]:
        exact = [s for s in self._stubs if not s.prefix and s.url == url]
        if exact:
            return exact[-1]
        prefixes = [s for s in self._stubs if s.prefix and url.startswith(s.url)]
        return max(prefixes, key=lambda s: len(s.url), default=None)

    def _describe(self) -> str:
        if not self._stubs:
            return "no URL is stubbed"
        return "stubbed: " + ", ".join(s.url + ("*" if s.prefix else "") for s in self._stubs)


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
    published: list[PublishedMessage] = field(default_factory=list)
    """Every publication, in order, whether or not the host would commit them."""
    replies: list[ReplyMessage] = field(default_factory=list)
    """Every reply, in order, whether or not the host would commit them."""
    requests: list[SentRequest] = field(default_factory=list)
    """Every HTTP request the handler made, in order (made, whatever the outcome: HTTP is not
    transactional, a retried batch makes its requests again)."""

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

    @property
    def committed_publications(self) -> list[PublishedMessage]:
        """The publications the host would commit: all if the handler returned, else none."""
        return self.published if self.ok else []

    @property
    def committed_replies(self) -> list[ReplyMessage]:
        """The replies the host would commit: those to acknowledged messages, if the handler
        returned. The reply to a message retried or dead-lettered is discarded."""
        acked = set(self.acked)
        return [r for r in self.replies if r.message_id in acked]

    def reply_to(self, id: str) -> Optional[ReplyMessage]:
        """The reply to message ``id``, if the handler made one (committed or not)."""
        return next((r for r in self.replies if r.message_id == id), None)

    def disposition(self, id: str) -> Union[Retry, DeadLetter, None]:
        """What the handler asked for message ``id``; ``None`` if it was acknowledged."""
        return next((f.disposition for f in self.failures if f.id == id), None)


class Kv:
    """In-memory key-value buckets for :func:`run` (``kv=``): what the handler writes is
    committed to them only if it returns, as the host commits state with the acknowledgement.
    Give the buckets the function's version lists, by name (empty) or with their keys."""

    def __init__(self, buckets: Union[Iterable[str], Mapping[str, Mapping[str, Union[bytes, str]]]] = ()):
        if isinstance(buckets, Mapping):
            self.buckets = {name: {k: _bytes(v) for k, v in keys.items()} for name, keys in buckets.items()}
        else:
            self.buckets = {name: {} for name in buckets}

    def get(self, bucket: str, key: str) -> Optional[bytes]:
        """The committed value of ``key`` in ``bucket``."""
        return self.buckets[bucket].get(key)


class _KvRun:
    """One run's view of a :class:`Kv`: its own writes over the committed state."""

    def __init__(self, kv: Optional[Kv]):
        self.kv = kv or Kv()
        # (bucket, key) -> new value, or None for a delete; in write order.
        self.pending: dict[tuple[str, str], Optional[bytes]] = {}

    def open(self, bucket: str) -> None:
        if bucket not in self.kv.buckets:
            raise _kv_module.Denied(
                f"bucket `{bucket}` is not among the function's kv_buckets "
                f"({', '.join(sorted(self.kv.buckets)) or 'none'}); list it in testing.Kv"
            )

    def get(self, bucket: str, key: str) -> Optional[bytes]:
        if (bucket, key) in self.pending:
            return self.pending[(bucket, key)]
        return self.kv.buckets[bucket].get(key)

    def set(self, bucket: str, key: str, value: bytes) -> None:
        if len(key.encode("utf-8")) > 1024:
            raise Error(f"a key is at most 1 KiB, not {len(key.encode('utf-8'))} bytes")
        if len(value) > 1024 * 1024:
            raise Error(f"a value is at most 1 MiB, not {len(value)} bytes")
        self.pending[(bucket, key)] = value

    def delete(self, bucket: str, key: str) -> None:
        self.pending[(bucket, key)] = None

    def keys(self, bucket: str) -> list[str]:
        keys = set(self.kv.buckets[bucket])
        for (b, key), value in self.pending.items():
            if b == bucket:
                (keys.add if value is not None else keys.discard)(key)
        return sorted(keys, key=lambda k: k.encode("utf-8"))

    def increment(self, bucket: str, key: str, delta: int) -> int:
        current = self.get(bucket, key)
        try:
            value = int(current or b"0") + delta
        except ValueError:
            raise Error(f"key `{key}` of bucket `{bucket}` does not hold a number") from None
        self.pending[(bucket, key)] = str(value).encode()
        return value

    def commit(self) -> None:
        for (bucket, key), value in self.pending.items():
            if value is None:
                self.kv.buckets[bucket].pop(key, None)
            else:
                self.kv.buckets[bucket][key] = value


class _Run:
    """The outbox and the HTTP transport of one run, with the host's checks."""

    def __init__(self, ids: list[str], queues, topics, stubs: Optional[Http], kv: Optional[Kv] = None):
        self.ids = set(ids)
        self.kv = _KvRun(kv)
        self.queues = None if queues is None else set(queues)
        self.topics = None if topics is None else set(topics)
        self.stubs = stubs or Http()
        self.sent: list[SentMessage] = []
        self.published: list[PublishedMessage] = []
        self.replies: list[ReplyMessage] = []
        self.requests: list[SentRequest] = []
        self.unstubbed: Optional[UnstubbedRequest] = None

    def send(self, queue, body, attributes, delay_ms, priority, group) -> None:
        if priority is not None and not 0 <= priority <= MAX_PRIORITY:
            raise Error(
                f"invalid message: priority {priority} is out of range; give 0 (lowest) to "
                f"{MAX_PRIORITY} (highest), or leave it out for {DEFAULT_PRIORITY}"
            )
        if group is not None:
            size = len(group.encode("utf-8"))
            if not 1 <= size <= MAX_GROUP_BYTES:
                raise Error(f"invalid message: a group key must be 1 to {MAX_GROUP_BYTES} bytes, not {size}")
            if any(unicodedata.category(c) == "Cc" for c in group):
                raise Error("invalid message: a group key must not contain control characters")
        if self.queues is not None and queue not in self.queues:
            raise Error(f"queue `{queue}` does not exist")
        self.sent.append(SentMessage(queue, body, list(attributes), delay_ms, priority, group))

    def publish(self, topic, body, attributes) -> None:
        if self.topics is not None and topic not in self.topics:
            raise Error(f"topic `{topic}` does not exist")
        self.published.append(PublishedMessage(topic, body, list(attributes)))

    def reply(self, message_id, body, attributes) -> None:
        if any(r.message_id == message_id for r in self.replies):
            raise Error(f"message `{message_id}` already has a reply in this invocation; a message gets at most one")
        if message_id not in self.ids:
            raise Error(
                f"message `{message_id}` is not in this batch; reply to a message of the batch being handled"
            )
        self.replies.append(ReplyMessage(message_id, body, list(attributes)))

    def http(self, request: http.Request) -> http.Response:
        headers = http.Headers([(name, value.decode("utf-8", errors="replace")) for name, value in request.headers])
        self.requests.append(SentRequest(request.method, request.url, headers, request.body, request.timeout))
        stub = self.stubs._find(request.url)
        if stub is None:
            self.unstubbed = self.unstubbed or UnstubbedRequest(
                f"{request.method} {request.url} is not stubbed ({self.stubs._describe()}); "
                f"stub it: testing.Http().stub({request.url!r}, status=200) or .stub_prefix(...)"
            )
            raise self.unstubbed
        if stub.error is not None:
            raise http.error(stub.error, request.method, request.url)
        return http.Response(stub.status, http.Headers(stub.headers), stub.body, request.url)


def run(
    handler: Callable[[Batch], Any],
    messages: Iterable[Union[TestMessage, Message]],
    *,
    queues: Optional[Iterable[str]] = None,
    topics: Optional[Iterable[str]] = None,
    http: Optional[Http] = None,
    kv: Optional[Kv] = None,
) -> Report:
    """Runs ``handler`` on one batch of ``messages`` and reports what happened.

    With ``queues`` (``topics``), only those queues (topics) exist: a send (publication) to any
    other raises, as it does on the host. ``http`` answers the handler's HTTP requests; without
    it, any request fails the test. ``kv`` holds the buckets the handler may open; its writes
    are committed to them only if it returns. An exception from the handler is caught and reported, as the
    host reports it (``report.error``, ``report.exception``), and its traceback is printed to
    standard error, as the host puts it in the invocation's log: pytest shows it beside a failed
    assertion such as ``report.acked == [...]``, so the cause is never hidden.
    :class:`UnstubbedRequest` is raised.
    """
    batch = Batch(
        [m.build(i) if isinstance(m, TestMessage) else m for i, m in enumerate(messages, start=1)]
    )
    ids = [m.id for m in batch]
    current = _Run(ids, queues, topics, http, kv)
    previous = _outbox.recorder, _http_module.transport, _kv_module.backend
    _outbox.recorder, _http_module.transport, _kv_module.backend = current, current.http, current.kv
    try:
        failures = to_failures(handler(batch))
        error, exception = None, None
    except Exception as e:  # noqa: BLE001 - reported, like the host does
        failures, error, exception = [], reason(e), e
        print(
            "sluice_sdk.testing.run: the handler raised, so the whole batch fails (the host would "
            f"retry it): {error}",
            file=sys.stderr,
        )
        traceback.print_exception(e, file=sys.stderr)
    finally:
        _outbox.recorder, _http_module.transport, _kv_module.backend = previous
    if error is None:
        current.kv.commit()
    if current.unstubbed is not None:
        raise current.unstubbed
    return Report(ids, failures, error, exception, current.sent, current.published, current.replies, current.requests)


# `run` takes a parameter named `http`, as users write it; the module is reached under this name.
_http_module = http
