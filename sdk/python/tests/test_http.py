"""sluice_sdk.http through the native harness: requests as sent, stubbed responses and errors,
and the errors that say what went wrong."""

import pytest

from sluice_sdk import Error, http, testing


def run(handler, stubs=None):
    """Runs ``handler`` (a function of no arguments) as a handler; returns (its result, report)."""
    results = []
    report = testing.run(lambda batch: results.append(handler()), [testing.message("x")], http=stubs)
    return (results[0] if results else None), report


def test_requests_are_recorded_as_sent():
    stubs = testing.Http().stub_prefix("https://api.example.com/")

    def calls():
        http.get("https://api.example.com/items?page=2", headers={"Accept": "application/json"}, timeout=2.5)
        http.post("https://api.example.com/items", "héllo", headers=[("X-Tag", "a"), ("x-tag", "b")])
        http.post("https://api.example.com/items", json={"n": 1})
        http.request("delete", "https://api.example.com/items/1", body=b"\x00")

    _, report = run(calls, stubs)
    get, text, json_post, delete = report.requests
    assert (get.method, get.url, get.body, get.timeout) == ("GET", "https://api.example.com/items?page=2", b"", 2.5)
    assert get.header("accept") == "application/json"
    assert get.header("content-length") is None
    assert text.body == "héllo".encode()
    assert text.header("X-TAG") == "a, b"
    assert text.headers.get_all("x-tag") == ["a", "b"]
    assert text.header("content-length") == "6"
    assert json_post.json() == {"n": 1}
    assert json_post.header("content-type") == "application/json"
    assert delete.method == "DELETE"
    assert delete.header("content-length") == "1"


def test_responses_come_from_the_exact_stub_else_the_longest_prefix():
    stubs = (
        testing.Http()
        .stub_prefix("https://api.example.com/", status=404)
        .stub_prefix("https://api.example.com/orders/", status=202, body="accepted", headers={"Retry-After": "3"})
        .stub("https://api.example.com/orders/1", json={"id": 1})
    )

    def calls():
        return [
            http.get("https://api.example.com/orders/1"),
            http.get("https://api.example.com/orders/2"),
            http.get("https://api.example.com/users"),
        ]

    (exact, prefix, fallback), _ = run(calls, stubs)
    assert (exact.status, exact.ok, exact.json()) == (200, True, {"id": 1})
    assert exact.headers["Content-Type"] == "application/json"
    assert (prefix.status, prefix.text(), prefix.headers["retry-after"]) == (202, "accepted", "3")
    assert prefix.url == "https://api.example.com/orders/2"
    assert (fallback.status, fallback.ok, fallback.body) == (404, False, b"")
    assert list(prefix.headers) == ["retry-after"]
    assert "content-type" not in prefix.headers


@pytest.mark.parametrize(
    "code, kind",
    [
        ("HTTP-request-denied", http.Denied),
        ("connection-timeout", http.Timeout),
        ("HTTP-response-timeout", http.Timeout),
        ("DNS-timeout", http.Timeout),
        ("connection-refused", http.HttpError),
        ("HTTP-request-URI-invalid", http.InvalidRequest),
    ],
)
def test_stubbed_errors_raise_what_the_host_would(code, kind):
    def call():
        with pytest.raises(kind) as raised:
            http.get("https://down.example.com/x")
        return raised.value

    error, report = run(call, testing.Http().stub("https://down.example.com/x", error=code))
    assert error.code == code
    assert isinstance(error, http.HttpError) and isinstance(error, Error)
    assert (error.method, error.url) == ("GET", "https://down.example.com/x")
    assert len(report.requests) == 1


def test_denied_says_how_to_allow_the_host():
    stubs = testing.Http().stub_prefix("https://api.example.com:8443/", error="HTTP-request-denied")
    _, report = run(lambda: http.post("https://api.example.com:8443/v1", b"x"), stubs)
    assert report.error == (
        "POST https://api.example.com:8443/v1 denied (HTTP-request-denied): the function may not reach "
        "https://api.example.com:8443; add it to the function's allowed_outbound_hosts "
        "(sluice deploy --allow-outbound https://api.example.com:8443)"
    )


def test_an_uncaught_http_error_fails_the_batch_with_its_message():
    _, report = run(lambda: http.get("https://x.example.com/"), testing.Http().stub_prefix("https://x", error="connection-refused"))
    assert report.error == "GET https://x.example.com/ failed: connection-refused"


def test_an_unstubbed_url_fails_the_test_even_when_the_handler_catches_it():
    def swallow():
        try:
            http.get("https://nowhere.example.com/a")
        except Exception:  # noqa: BLE001 - what a careless handler does
            pass

    with pytest.raises(testing.UnstubbedRequest, match=r"GET https://nowhere.example.com/a is not stubbed \(stubbed: https://api.example.com/\*\)"):
        run(swallow, testing.Http().stub_prefix("https://api.example.com/"))
    with pytest.raises(testing.UnstubbedRequest, match=r"no URL is stubbed"):
        run(lambda: http.get("https://nowhere.example.com/a"))


def test_invalid_requests_raise_before_sending():
    def failure(call):
        _, report = run(call, testing.Http().stub_prefix("https://example.com/"))
        assert report.requests == []
        return report.exception

    for url in ["ftp://files.example.com/", "https://", "not a url", "https://user:pw@example.com/", "https://example.com:x/"]:
        error = failure(lambda: http.get(url))
        assert isinstance(error, http.InvalidRequest) and isinstance(error, ValueError), url
        assert error.code == "HTTP-request-URI-invalid"
    error = failure(lambda: http.get("https://example.com/", headers={"bad name": "x"}))
    assert (error.code, error.detail) == ("invalid-syntax", "invalid header name 'bad name'")
    error = failure(lambda: http.get("https://example.com/", headers={"x": "a\r\nb"}))
    assert (error.code, error.detail) == ("invalid-syntax", "invalid value for header 'x'")
    assert failure(lambda: http.request("GET IT", "https://example.com/")).code == "HTTP-request-method-invalid"
    assert "either body or json" in str(failure(lambda: http.post("https://example.com/", b"x", json={})))
    assert "timeout must be a positive" in str(failure(lambda: http.get("https://example.com/", timeout=0)))


def test_stubs_are_checked():
    with pytest.raises(ValueError, match="unknown wasi:http error-code 'refused'"):
        testing.Http().stub("https://x/", error="refused")


def test_http_outside_a_run_says_so():
    with pytest.raises(Error, match="outside a handler run: natively there is no network"):
        http.get("https://example.com/")


def test_headers_are_case_insensitive():
    headers = http.Headers([("Set-Cookie", "a=1"), ("content-type", "text/plain"), ("set-cookie", "b=2")])
    assert headers["SET-COOKIE"] == "a=1, b=2"
    assert headers.get_all("set-cookie") == ["a=1", "b=2"]
    assert headers.get("missing") is None
    assert list(headers) == ["set-cookie", "content-type"]
    assert len(headers) == 2
    assert headers.pairs()[0] == ("Set-Cookie", "a=1")
