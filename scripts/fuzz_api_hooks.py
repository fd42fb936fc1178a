"""Schemathesis hooks for scripts/fuzz-api: how to generate component uploads."""

import schemathesis
from hypothesis import strategies as st

# Component uploads: random bytes, and bytes behind a real component preamble (`\0asm`,
# version 0x0d, layer 1) so the parser gets past the magic number.
schemathesis.openapi.media_type(
    "application/wasm",
    st.one_of(
        st.binary(max_size=4096),
        st.binary(max_size=1024).map(lambda rest: b"\x00asm\x0d\x00\x01\x00" + rest),
    ),
)


@schemathesis.hook
def map_body(ctx, body):
    """A long poll on an empty queue waits `wait_ms` (up to 20 s): keep the fuzzer's waits
    short, so a run tries many requests instead of sitting out a few."""
    operation = getattr(ctx, "operation", None)
    path = getattr(operation, "path", "") or ""
    if (
        path.endswith("/messages/receive")
        and isinstance(body, dict)
        and isinstance(body.get("wait_ms"), int)
        and not isinstance(body.get("wait_ms"), bool)
        and 50 < body["wait_ms"] <= 20_000
    ):
        body["wait_ms"] = 50
    return body


@schemathesis.hook
def map_headers(ctx, headers):
    """A request-reply enqueue waits `Sluice-Reply-Timeout-Ms` (up to 60 s) for a reply nobody
    gives here; past the fuzzer's request timeout that would read as a hang. Keep it short."""
    if isinstance(headers, dict):
        for name, value in list(headers.items()):
            if name.lower() == "sluice-reply-timeout-ms" and str(value).strip().isdigit():
                if 50 < int(str(value).strip()) <= 60_000:
                    headers[name] = "50"
    return headers
