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
