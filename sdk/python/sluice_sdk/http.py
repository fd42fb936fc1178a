"""Outbound HTTP: a small blocking client over the standard ``wasi:http/outgoing-handler``.

A handler may reach only the hosts its function's version allows (``allowed_outbound_hosts`` in
the manifest, ``sluice deploy --allow-outbound https://api.example.com``); a request to any other
fails with :class:`Denied`. Redirects are not followed: a 3xx is returned like any response.
Every request ends by the invocation's time limit; give ``timeout`` (seconds) to end it sooner
with :class:`Timeout`, so the handler can decide what to do. A request made by a batch that is
then retried is made again: send the message id as an idempotency key::

    from sluice_sdk import http

    response = http.post(
        "https://api.example.com/orders",
        json={"id": "o-1"},
        headers={"Idempotency-Key": msg.id},
        timeout=10,
    )
    if response.status == 429:
        ...

Natively there is no network: :mod:`sluice_sdk.testing` stubs responses per URL and records the
requests sent.
"""

from __future__ import annotations

import json as _json
import sys
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Optional, Sequence, Union
from urllib.parse import urlsplit

from . import Error, _bytes

__all__ = [
    "Denied",
    "Headers",
    "HttpError",
    "InvalidRequest",
    "Response",
    "Timeout",
    "get",
    "post",
    "request",
]

HeadersArg = Union[Mapping[str, Union[str, bytes]], Sequence[tuple[str, Union[str, bytes]]], None]

# The cases of `wasi:http/types.error-code`, as WIT spells them: `HttpError.code` is one of these.
ERROR_CODES = (
    "DNS-timeout",
    "DNS-error",
    "destination-not-found",
    "destination-unavailable",
    "destination-IP-prohibited",
    "destination-IP-unroutable",
    "connection-refused",
    "connection-terminated",
    "connection-timeout",
    "connection-read-timeout",
    "connection-write-timeout",
    "connection-limit-reached",
    "TLS-protocol-error",
    "TLS-certificate-error",
    "TLS-alert-received",
    "HTTP-request-denied",
    "HTTP-request-length-required",
    "HTTP-request-body-size",
    "HTTP-request-method-invalid",
    "HTTP-request-URI-invalid",
    "HTTP-request-URI-too-long",
    "HTTP-request-header-section-size",
    "HTTP-request-header-size",
    "HTTP-request-trailer-section-size",
    "HTTP-request-trailer-size",
    "HTTP-response-incomplete",
    "HTTP-response-header-section-size",
    "HTTP-response-header-size",
    "HTTP-response-body-size",
    "HTTP-response-trailer-section-size",
    "HTTP-response-trailer-size",
    "HTTP-response-transfer-coding",
    "HTTP-response-content-coding",
    "HTTP-response-timeout",
    "HTTP-upgrade-failed",
    "HTTP-protocol-error",
    "loop-detected",
    "configuration-error",
    "internal-error",
)
DENIED = "HTTP-request-denied"
TIMEOUTS = frozenset(
    {"DNS-timeout", "connection-timeout", "connection-read-timeout", "connection-write-timeout", "HTTP-response-timeout"}
)
INVALID = frozenset({"HTTP-request-method-invalid", "HTTP-request-URI-invalid", "HTTP-request-URI-too-long"})


class HttpError(Error):
    """A request that got no response. ``code`` names the ``wasi:http`` error-code (for example
    ``"connection-refused"``; one of :data:`ERROR_CODES`), ``method`` and ``url`` the request.
    Uncaught, it fails the batch (every message is retried) with its message as the reason."""

    def __init__(self, code: str, method: str, url: str, detail: Optional[str] = None):
        self.code = code
        self.method = method
        self.url = url
        self.detail = detail
        super().__init__(self._describe())

    def _describe(self) -> str:
        return f"{self.method} {self.url} failed: {self.code}" + (f" ({self.detail})" if self.detail else "")


class Denied(HttpError):
    """The host refused the request (``HTTP-request-denied``): the function may not reach this
    host. Allow it with the function's ``allowed_outbound_hosts``."""

    def _describe(self) -> str:
        origin = _origin(self.url)
        return (
            f"{self.method} {self.url} denied (HTTP-request-denied): the function may not reach {origin}; "
            f"add it to the function's allowed_outbound_hosts (sluice deploy --allow-outbound {origin})"
        )


class Timeout(HttpError):
    """No response (or no complete body) in time: the ``timeout`` given, or one of the host's
    connect and first-byte timeouts."""

    def _describe(self) -> str:
        return f"{self.method} {self.url} timed out ({self.code})" + (f": {self.detail}" if self.detail else "")


class InvalidRequest(HttpError, ValueError):
    """The request cannot be sent as given: a URL that is not ``http://`` or ``https://``
    (``code`` ``"HTTP-request-URI-invalid"``), an invalid method (``"HTTP-request-method-invalid"``)
    or a header the host refuses (``code`` the ``wasi:http`` header-error: ``"invalid-syntax"`` or
    ``"forbidden"``). Retrying does not help."""

    def _describe(self) -> str:
        return f"{self.method} {self.url} is not a valid request ({self.code})" + (f": {self.detail}" if self.detail else "")


def error(code: str, method: str, url: str, detail: Optional[str] = None) -> HttpError:
    """The exception for ``wasi:http`` error-code ``code`` (WIT spelling): :class:`Denied`,
    :class:`Timeout`, :class:`InvalidRequest` or a plain :class:`HttpError`."""
    if code == DENIED:
        kind: type[HttpError] = Denied
    elif code in TIMEOUTS:
        kind = Timeout
    elif code in INVALID:
        kind = InvalidRequest
    else:
        kind = HttpError
    return kind(code, method, url, detail)


class Headers(Mapping[str, str]):
    """Header fields, looked up without regard to case. ``headers[name]`` and ``get`` give every
    value of the field joined with ``", "`` (as ``fetch`` does); :meth:`get_all` gives them apart;
    iterating gives each name once, lower-cased; :meth:`pairs` gives the fields as received."""

    def __init__(self, pairs: Union[Mapping[str, str], Sequence[tuple[str, str]]] = ()):
        items = pairs.items() if isinstance(pairs, Mapping) else pairs
        self._pairs = [(str(name), str(value)) for name, value in items]

    def get_all(self, name: str) -> list[str]:
        """Every value of the field ``name``, in order (empty if there is none)."""
        name = name.lower()
        return [v for k, v in self._pairs if k.lower() == name]

    def pairs(self) -> list[tuple[str, str]]:
        """The ``(name, value)`` fields, in order, as received."""
        return list(self._pairs)

    def __getitem__(self, name: str) -> str:
        values = self.get_all(name)
        if not values:
            raise KeyError(name)
        return ", ".join(values)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(k.lower() for k, _ in self._pairs))

    def __len__(self) -> int:
        return len({k.lower() for k, _ in self._pairs})

    def __repr__(self) -> str:
        return f"Headers({self._pairs!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._pairs == other._pairs
        return super().__eq__(other)


@dataclass(frozen=True)
class Response:
    """A response: any status, 3xx and errors included (check :attr:`status` or :attr:`ok`)."""

    status: int
    headers: Headers
    body: bytes
    url: str
    """The URL requested (redirects are not followed, so it is also the URL that answered)."""

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    def text(self) -> str:
        """The body as text (UTF-8, undecodable bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON; raises ``ValueError`` if it does not parse."""
        return _json.loads(self.body)


@dataclass(frozen=True)
class Request:
    """A request as it is handed to the transport (the host, or the test harness's stubs)."""

    method: str
    url: str
    headers: list[tuple[str, bytes]]
    body: bytes
    timeout: Optional[float]


# Set by `sluice_sdk.testing` for the duration of a run: takes a `Request`, returns a `Response`.
transport = None


def request(
    method: str,
    url: str,
    *,
    body: Union[bytes, bytearray, memoryview, str, None] = None,
    json: Any = None,
    headers: HeadersArg = None,
    timeout: Optional[float] = None,
) -> Response:
    """Sends one request and waits for the whole response.

    ``body`` is bytes or text (sent as UTF-8); ``json`` is a value sent as JSON with
    ``Content-Type: application/json`` (unless ``headers`` sets one). ``headers`` is a mapping
    or ``(name, value)`` pairs, values text (sent as UTF-8) or bytes. ``timeout`` is in seconds,
    for the whole request, body included; without it the invocation's time limit bounds it.

    Raises :class:`Denied` if the host may not be reached, :class:`Timeout`, :class:`InvalidRequest`
    or another :class:`HttpError` (its ``code`` says which) when no response arrives.
    """
    method = method.upper()
    fields = _header_pairs(headers)
    if json is not None:
        if body is not None:
            raise ValueError("give either body or json, not both")
        body = _json.dumps(json, separators=(",", ":"))
        if not any(name.lower() == "content-type" for name, _ in fields):
            fields.append(("content-type", b"application/json"))
    if timeout is not None and timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout}")
    _check_url(method, url)
    _check_headers(method, url, fields)
    content = b"" if body is None else _bytes(body)
    # With its length given, the body goes in one piece rather than chunked, which some
    # receivers do not read; and the host checks that the body written is that long.
    if (content or method in ("POST", "PUT", "PATCH")) and not any(n.lower() == "content-length" for n, _ in fields):
        fields.append(("content-length", str(len(content)).encode()))
    sent = Request(method, url, fields, content, timeout)
    if sys.platform == "wasi":
        return _wasi_http.send(sent)
    if transport is None:
        raise Error(
            f"{method} {url} outside a handler run: natively there is no network; "
            "run the handler with sluice_sdk.testing.run and stub the URL (http=testing.Http().stub(...))"
        )
    return transport(sent)


def get(url: str, *, headers: HeadersArg = None, timeout: Optional[float] = None) -> Response:
    """``GET url``; see :func:`request`."""
    return request("GET", url, headers=headers, timeout=timeout)


def post(
    url: str,
    body: Union[bytes, bytearray, memoryview, str, None] = None,
    *,
    json: Any = None,
    headers: HeadersArg = None,
    timeout: Optional[float] = None,
) -> Response:
    """``POST url`` with ``body`` (or ``json``); see :func:`request`."""
    return request("POST", url, body=body, json=json, headers=headers, timeout=timeout)


def split_url(url: str) -> tuple[str, str, str]:
    """``(scheme, authority, path-with-query)`` of an ``http(s)://`` URL, as ``wasi:http`` takes
    them; the fragment is dropped. Raises ``ValueError`` for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("only http:// and https:// URLs can be requested")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    if "@" in parts.netloc:
        raise ValueError("credentials in the URL are not sent; use an Authorization header")
    path = parts.path or "/"
    return parts.scheme, parts.netloc, path + (f"?{parts.query}" if parts.query else "")


def _check_url(method: str, url: str) -> None:
    try:
        split_url(url)
        _ = urlsplit(url).port  # raises ValueError for a port that is not a number
    except ValueError as e:
        raise InvalidRequest("HTTP-request-URI-invalid", method, url, str(e)) from None
    if not method or any(c in method for c in " \t\r\n()<>@,;:\\\"/[]?={}"):
        raise InvalidRequest("HTTP-request-method-invalid", method, url, f"invalid method {method!r}")


_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _check_headers(method: str, url: str, fields: list[tuple[str, bytes]]) -> None:
    for name, value in fields:
        if not name or not set(name) <= _TOKEN:
            raise InvalidRequest("invalid-syntax", method, url, f"invalid header name {name!r}")
        if any(c in value for c in b"\r\n\0"):
            raise InvalidRequest("invalid-syntax", method, url, f"invalid value for header {name!r}")


def _header_pairs(headers: HeadersArg) -> list[tuple[str, bytes]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(name), value if isinstance(value, bytes) else str(value).encode("utf-8")) for name, value in items]


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, as an ``allowed_outbound_hosts`` pattern spells it."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    except ValueError:
        return url


# Imported last, since it uses this module's types; and at import time, because componentize-py
# bundles only the modules imported while it pre-initializes the component.
if sys.platform == "wasi":
    from . import _wasi_http
