import hashlib
import hmac

import pytest

from sluice_sdk import DeadLetter, Retry, http, testing
from webhook import handle, retry_after_ms, settle, signature

URL = "https://hooks.example.com/orders"


@pytest.fixture(autouse=True)
def secret(monkeypatch):
    monkeypatch.setenv("WEBHOOK_SECRET", "s3cret")


def hook(body="{}", url=URL, attributes=(), **kwargs):
    return testing.message(body, attributes=[("webhook-url", url), *attributes], **kwargs)


def test_posts_the_body_signed_with_the_message_id_and_acks_a_2xx():
    stubs = testing.Http().stub(URL, status=204)
    message = hook('{"id": "o-1"}', id="m-1", attributes=[("content-type", "application/json")])
    report = testing.run(handle, [message], http=stubs)
    assert report.acked == ["m-1"]
    [sent] = report.requests
    assert (sent.method, sent.url, sent.body) == ("POST", URL, b'{"id": "o-1"}')
    expected = hmac.new(b"s3cret", b'{"id": "o-1"}', hashlib.sha256).hexdigest()
    assert sent.header("sluice-signature") == f"sha256={expected}"
    assert sent.header("Idempotency-Key") == "m-1"
    assert sent.header("content-type") == "application/json"
    assert sent.timeout == 10


def test_the_content_type_defaults_to_octet_stream():
    report = testing.run(handle, [hook(b"\x00\x01")], http=testing.Http().stub(URL))
    assert report.requests[0].header("content-type") == "application/octet-stream"
    assert report.requests[0].body == b"\x00\x01"


def test_429_and_5xx_retry_after_the_receivers_retry_after():
    stubs = (
        testing.Http()
        .stub("https://a.example.com/", status=429, headers={"Retry-After": "30"})
        .stub("https://b.example.com/", status=503)
        .stub("https://c.example.com/", status=500, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    )
    report = testing.run(
        handle,
        [hook(url="https://a.example.com/"), hook(url="https://b.example.com/"), hook(url="https://c.example.com/")],
        http=stubs,
    )
    assert report.acked == []
    assert report.disposition("msg-1") == Retry(30_000)
    assert report.disposition("msg-2") == Retry(None)
    assert report.disposition("msg-3") == Retry(None)


def test_other_statuses_dead_letter_with_the_status():
    stubs = testing.Http().stub_prefix("https://hooks.example.com/gone", status=410).stub_prefix(
        "https://hooks.example.com/moved", status=301, headers={"Location": "https://elsewhere.example.com/"}
    )
    report = testing.run(
        handle, [hook(url="https://hooks.example.com/gone/1"), hook(url="https://hooks.example.com/moved")], http=stubs
    )
    assert report.disposition("msg-1") == DeadLetter("HTTP 410")
    assert report.disposition("msg-2") == DeadLetter("HTTP 301")


@pytest.mark.parametrize("error", ["connection-timeout", "HTTP-response-timeout", "connection-refused", "DNS-error"])
def test_timeouts_and_connection_errors_retry_with_the_queues_backoff(error):
    stubs = testing.Http().stub(URL, error=error).stub("https://ok.example.com/")
    report = testing.run(handle, [hook(), hook(url="https://ok.example.com/")], http=stubs)
    assert report.acked == ["msg-2"]
    assert report.disposition("msg-1") == Retry(None)


def test_a_denied_host_dead_letters_saying_how_to_allow_it():
    stubs = testing.Http().stub_prefix("https://evil.example.com", error="HTTP-request-denied")
    report = testing.run(handle, [hook(url="https://evil.example.com/x")], http=stubs)
    reason = report.disposition("msg-1").reason
    assert "HTTP-request-denied" in reason
    assert "--allow-outbound https://evil.example.com" in reason


def test_a_missing_or_invalid_webhook_url_dead_letters():
    report = testing.run(handle, [testing.message("{}"), hook(url="ftp://files.example.com/x")])
    assert report.disposition("msg-1") == DeadLetter(
        "no `webhook-url` attribute: the message does not say where to deliver it"
    )
    assert "HTTP-request-URI-invalid" in report.disposition("msg-2").reason
    assert report.requests == []


def test_a_missing_secret_fails_the_batch(monkeypatch):
    monkeypatch.delenv("WEBHOOK_SECRET")
    report = testing.run(handle, [hook()], http=testing.Http().stub(URL))
    assert not report.ok
    assert report.error.startswith("WEBHOOK_SECRET is not set: deploy the function with --env WEBHOOK_SECRET=")
    assert report.requests == []


def test_settle_and_retry_after():
    assert settle(200, None) is None
    assert settle(299, "5") is None
    assert settle(429, "5") == Retry(5000)
    assert settle(502, None) == Retry(None)
    assert settle(404, "5") == DeadLetter("HTTP 404")
    assert retry_after_ms(" 7 ") == 7000
    assert retry_after_ms("-1") is None
    assert retry_after_ms("99999999999") == 0xFFFF_FFFF


def test_signature_is_hex_hmac_sha256():
    assert signature(b"key", b"The quick brown fox jumps over the lazy dog") == (
        "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    )
