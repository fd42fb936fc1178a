"""Where sends go: the host's outbox inside a component, the test recorder natively.

``sys.platform`` is ``"wasi"`` only inside a component built by componentize-py, whose generated
``wit_world`` bindings exist only there. They are imported here, at module level, because
componentize-py bundles only the modules imported while it pre-initializes the component.
"""

from __future__ import annotations

import sys
from typing import Callable, Optional

from . import Error

if sys.platform == "wasi":
    from componentize_py_types import Err
    from wit_world.imports import outbox, types

# Set by `sluice_sdk.testing` for the duration of a run: (queue, body, attributes, delay_ms).
recorder: Optional[Callable[[str, bytes, list, int], None]] = None


def deliver(queue: str, body: bytes, attributes: list, delay_ms: int) -> None:
    if sys.platform == "wasi":
        try:
            outbox.send(types.Outgoing(queue, body, attributes, delay_ms))
        except Err as e:
            raise Error(str(e.value)) from None
        return
    if recorder is None:
        raise Error(
            "send outside a handler run: natively, sends work only inside sluice_sdk.testing.run"
        )
    recorder(queue, body, attributes, delay_ms)
