"""The only module that speaks ``wasi:http`` (through componentize-py's generated bindings): it
sends a :class:`sluice_sdk.http.Request` through ``outgoing-handler.handle`` and blocks on
``wasi:io/poll`` until the whole response is in. Imported only inside a component.

Resources are used in ``with`` blocks: a child (a stream, a pollable, a response's headers) must
be dropped before its parent is dropped or finished, or the host traps.
"""

from __future__ import annotations

from typing import Optional

from componentize_py_types import Err, Ok
from wit_world.imports import monotonic_clock, outgoing_handler, poll, streams
from wit_world.imports import wasi_http_types as types

from . import http

# `blocking-write-and-flush` takes at most 4096 bytes a call.
WRITE_CHUNK = 4096
READ_CHUNK = 64 * 1024

METHODS = {
    "GET": types.Method_Get,
    "HEAD": types.Method_Head,
    "POST": types.Method_Post,
    "PUT": types.Method_Put,
    "DELETE": types.Method_Delete,
    "CONNECT": types.Method_Connect,
    "OPTIONS": types.Method_Options,
    "TRACE": types.Method_Trace,
    "PATCH": types.Method_Patch,
}

# componentize-py names the error-code cases in CamelCase (`ErrorCode_HttpRequestDenied`).
CODES = {"ErrorCode_" + "".join(p.capitalize() for p in code.split("-")): code for code in http.ERROR_CODES}


def send(request: http.Request) -> http.Response:
    method, url = request.method, request.url
    scheme, authority, path = http.split_url(url)
    deadline = None if request.timeout is None else monotonic_clock.now() + int(request.timeout * 1e9)

    try:
        fields = types.Fields.from_list(request.headers)
    except Err as e:
        if isinstance(e.value, types.HeaderError_Forbidden):
            raise http.InvalidRequest("forbidden", method, url, "a header the host does not let handlers set") from None
        raise http.InvalidRequest("invalid-syntax", method, url, "an invalid header name or value") from None
    outgoing = types.OutgoingRequest(fields)
    try:
        outgoing.set_method(METHODS[method]() if method in METHODS else types.Method_Other(method))
        outgoing.set_scheme(types.Scheme_Https() if scheme == "https" else types.Scheme_Http())
        outgoing.set_authority(authority)
        outgoing.set_path_with_query(path)
    except Err:
        raise http.InvalidRequest("HTTP-request-URI-invalid", method, url) from None
    options = _options(request.timeout)
    body = outgoing.body()

    try:
        future = outgoing_handler.handle(outgoing, options)
    except Err as e:
        raise _error(e.value, method, url) from None
    with future:
        _write(body, request.body)
        try:
            types.OutgoingBody.finish(body, None)
        except Err as e:
            raise _error(e.value, method, url) from None

        while (result := future.get()) is None:
            _wait(future.subscribe(), deadline, method, url)
    # The outer result fails only on a second `get`, which never happens here.
    assert isinstance(result, Ok)
    if isinstance(result.value, Err):
        raise _error(result.value.value, method, url)
    with result.value.value as response:
        status = response.status()
        with response.headers() as headers:
            pairs = [(name, _text(value)) for name, value in headers.entries()]
        content = _read(response.consume(), deadline, method, url)
    return http.Response(status, http.Headers(pairs), content, url)


def _options(timeout: Optional[float]) -> Optional[types.RequestOptions]:
    """Connect, first-byte and between-bytes timeouts of ``timeout`` each; a host that does not
    support one keeps its own, and ``send`` still enforces the overall deadline."""
    if timeout is None:
        return None
    options = types.RequestOptions()
    nanos = int(timeout * 1e9)
    for setter in (options.set_connect_timeout, options.set_first_byte_timeout, options.set_between_bytes_timeout):
        try:
            setter(nanos)
        except Err:
            pass
    return options


def _write(body: types.OutgoingBody, content: bytes) -> None:
    """Writes the request body. A failed write is left for the response to explain: the host
    reports why the request failed through the future."""
    with body.write() as stream:
        for start in range(0, len(content), WRITE_CHUNK):
            try:
                stream.blocking_write_and_flush(content[start : start + WRITE_CHUNK])
            except Err:
                return


def _read(body: types.IncomingBody, deadline: Optional[int], method: str, url: str) -> bytes:
    chunks = []
    with body.stream() as stream:
        while True:
            try:
                chunk = stream.read(READ_CHUNK)
            except Err as e:
                if isinstance(e.value, streams.StreamError_Closed):
                    break
                # The body failed part way: the host says why (a cap on response bytes, a
                # timeout) when the stream's error is an HTTP one.
                code = types.http_error_code(e.value.value)
                if code is None:
                    detail = e.value.value.to_debug_string()
                    raise http.HttpError("HTTP-response-incomplete", method, url, detail) from None
                raise _error(code, method, url) from None
            if chunk:
                chunks.append(chunk)
            else:
                _wait(stream.subscribe(), deadline, method, url)
    with types.IncomingBody.finish(body):
        pass
    return b"".join(chunks)


def _wait(pollable, deadline: Optional[int], method: str, url: str) -> None:
    """Blocks until ``pollable`` is ready, or raises :class:`http.Timeout` at ``deadline``."""
    with pollable:
        if deadline is None:
            pollable.block()
            return
        with monotonic_clock.subscribe_instant(deadline) as timer:
            if 0 not in poll.poll([pollable, timer]):
                raise http.Timeout("HTTP-response-timeout", method, url, "the request's timeout passed")


def _error(code, method: str, url: str) -> http.HttpError:
    name = CODES.get(type(code).__name__, "internal-error")
    return http.error(name, method, url, _detail(code))


def _detail(code) -> Optional[str]:
    value = getattr(code, "value", None)
    if isinstance(value, str):
        return value
    if isinstance(value, types.DnsErrorPayload):
        return value.rcode
    if isinstance(value, types.TlsAlertReceivedPayload):
        return value.alert_message
    return None


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")
