"""The glue between a handler function and the component's ``handle`` export.

``scripts/build-python`` generates the component's entry module, which calls :func:`world` with
the user's handler; nothing else should import this module. It runs only inside a component.
"""

from __future__ import annotations

import sys
import traceback

from . import Batch, DeadLetter, Error, Message, Outcome
from . import _outbox, http  # noqa: F401 - imported now so that componentize-py bundles them


def world(handler):
    """The ``WitWorld`` class componentize-py exports, calling ``handler`` once per batch."""
    from componentize_py_types import Err
    from wit_world.imports import sluice_queue_types as types

    class WitWorld:
        def handle(self, batch):
            messages = Batch(
                [
                    Message(
                        m.id,
                        m.queue,
                        bytes(m.body),
                        tuple(m.attributes),
                        m.attempt,
                        m.enqueued_at_ms,
                        m.priority,
                        m.group,
                    )
                    for m in batch
                ]
            )
            try:
                outcome = handler(messages)
                failures = to_failures(outcome)
            except Exception as e:  # noqa: BLE001 - every exception fails the batch, by contract
                # The traceback goes to stderr, which the host keeps as the invocation's log.
                traceback.print_exc(file=sys.stderr)
                raise Err(reason(e)) from None
            return [
                types.ItemFailure(
                    f.id,
                    types.Disposition_DeadLetter(f.disposition.reason)
                    if isinstance(f.disposition, DeadLetter)
                    else types.Disposition_Retry(f.disposition.delay_ms),
                )
                for f in failures
            ]

    return WitWorld


def to_failures(outcome):
    """The failures of what a handler returned: an ``Outcome`` or ``None`` (acknowledge all)."""
    if outcome is None:
        return []
    if not isinstance(outcome, Outcome):
        raise TypeError(
            f"the handler returned {type(outcome).__name__}; return a sluice_sdk.Outcome, or None to acknowledge the batch"
        )
    return outcome.failures


def reason(error: BaseException) -> str:
    """The invocation's reason for an exception: its message, or its type when it has none."""
    text = str(error)
    name = type(error).__name__
    if not text:
        return name
    return text if isinstance(error, Error) else f"{name}: {text}"

