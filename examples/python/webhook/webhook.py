"""A webhook deliverer: POSTs each message's body to the URL in its ``webhook-url`` attribute,
signed, and settles the message by the answer. The Python twin of examples/webhook.

Each request carries ``Sluice-Signature: sha256=<hex HMAC-SHA256 of the body, keyed with the
function's WEBHOOK_SECRET>``, for the receiver to check it came from us, and
``Idempotency-Key: <message id>``: a message is delivered at least once, so the receiver uses the
key to ignore a repeat.

- 2xx: acknowledged.
- 429, 5xx, a timeout or a connection error: retried, after the ``Retry-After`` the receiver
  asked for (in seconds) or else the queue's backoff.
- any other status: dead-lettered with the reason ``HTTP <status>`` (redirects are not followed).
- no ``webhook-url``, one that is not an http(s) URL, or a host the function may not reach:
  dead-lettered with the reason.
- WEBHOOK_SECRET not set: the whole batch fails (and is retried) until it is.

Deploy it with the receivers' hosts allowed and the secret, for example::

    sluice deploy webhook.wasm --name webhook --queue webhooks \
        --allow-outbound https://hooks.example.com --env WEBHOOK_SECRET=...
"""

import hashlib
import hmac
import os
from typing import Optional, Union

from sluice_sdk import Batch, DeadLetter, Error, Outcome, Retry, http

# Seconds one delivery may take: a receiver that hangs costs a retry of its message, not the
# batch (the invocation's own time limit would fail every message of it).
TIMEOUT_SECONDS = 10


def handle(batch: Batch) -> Outcome:
    secret = os.environ.get("WEBHOOK_SECRET")
    if not secret:
        raise Error(
            "WEBHOOK_SECRET is not set: deploy the function with --env WEBHOOK_SECRET=<the key "
            "receivers check Sluice-Signature with>"
        )
    outcome = Outcome()
    for msg in batch:
        url = msg.attribute("webhook-url")
        if not url:
            outcome.dead_letter(msg, "no `webhook-url` attribute: the message does not say where to deliver it")
            continue
        headers = {
            "Content-Type": msg.attribute("content-type") or "application/octet-stream",
            "Sluice-Signature": signature(secret.encode("utf-8"), msg.body),
            "Idempotency-Key": msg.id,
        }
        try:
            response = http.post(url, msg.body, headers=headers, timeout=TIMEOUT_SECONDS)
        except (http.Denied, http.InvalidRequest) as e:
            outcome.dead_letter(msg, e)
            continue
        except http.HttpError as e:
            print(f"{msg.id}: {e}; retrying")
            outcome.retry(msg)
            continue
        decision = settle(response.status, response.headers.get("retry-after"))
        if isinstance(decision, Retry):
            outcome.retry(msg, decision.delay_ms)
        elif isinstance(decision, DeadLetter):
            outcome.dead_letter(msg, decision.reason)
    return outcome


def signature(secret: bytes, body: bytes) -> str:
    """The ``Sluice-Signature`` header's value for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def settle(status: int, retry_after: Optional[str]) -> Union[Retry, DeadLetter, None]:
    """What a response means for its message: ``None`` to acknowledge it, or its disposition."""
    if 200 <= status < 300:
        return None
    if status == 429 or status >= 500:
        return Retry(retry_after_ms(retry_after))
    return DeadLetter(f"HTTP {status}")


def retry_after_ms(value: Optional[str]) -> Optional[int]:
    """``Retry-After`` in milliseconds when it is a number of seconds; ``None`` (the queue's
    backoff) when it is absent or an HTTP date."""
    if value is None or not value.strip().isdigit():
        return None
    return min(int(value.strip()) * 1000, 0xFFFF_FFFF)
