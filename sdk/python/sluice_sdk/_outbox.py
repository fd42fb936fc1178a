"""Where sends, publications and replies go: the host's outbox inside a component, the test
recorder natively.

``sys.platform`` is ``"wasi"`` only inside a component built by componentize-py, whose generated
``wit_world`` bindings exist only there. They are imported here, at module level, because
componentize-py bundles only the modules imported while it pre-initializes the component.
"""

from __future__ import annotations

import sys
from typing import Optional, Protocol

from . import Error

if sys.platform == "wasi":
    from componentize_py_types import Err
    from wit_world.imports import outbox, sluice_queue_types


class Recorder(Protocol):
    """What :mod:`sluice_sdk.testing` installs for the duration of a run."""

    def send(self, queue: str, body: bytes, attributes: list, delay_ms: int, priority: Optional[int], group: Optional[str]) -> None: ...
    def publish(self, topic: str, body: bytes, attributes: list) -> None: ...
    def reply(self, message_id: str, body: bytes, attributes: list) -> None: ...


recorder: Optional[Recorder] = None


def send(queue: str, body: bytes, attributes: list, delay_ms: int, priority: Optional[int], group: Optional[str]) -> None:
    if sys.platform == "wasi":
        _host(outbox.send, sluice_queue_types.Outgoing(queue, body, attributes, delay_ms, priority, group))
    else:
        _recorder("send").send(queue, body, attributes, delay_ms, priority, group)


def publish(topic: str, body: bytes, attributes: list) -> None:
    if sys.platform == "wasi":
        _host(outbox.publish, topic, body, attributes)
    else:
        _recorder("publish").publish(topic, body, attributes)


def reply(message_id: str, body: bytes, attributes: list) -> None:
    if sys.platform == "wasi":
        _host(outbox.reply, message_id, body, attributes)
    else:
        _recorder("reply").reply(message_id, body, attributes)


def _host(call, *args) -> None:
    try:
        call(*args)
    except Err as e:
        raise Error(str(e.value)) from None


def _recorder(what: str) -> Recorder:
    if recorder is None:
        raise Error(f"{what} outside a handler run: natively, the outbox works only inside sluice_sdk.testing.run")
    return recorder
