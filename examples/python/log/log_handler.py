"""Prints every message of the batch to stdout (captured by the host as the invocation's log)
and acknowledges them all. The Python twin of examples/log.

A message whose ``fail`` attribute is set fails the whole batch by raising an exception with
that text, to show that the message and traceback reach the invocation's log and reason.
"""

from sluice_sdk import Batch, Message


def handle(batch: Batch) -> None:
    for msg in batch:
        print(describe(msg))
        fail = msg.attribute("fail")
        if fail is not None:
            raise RuntimeError(fail)


def describe(msg: Message) -> str:
    """One log line: id, queue, attempt, attributes and the body as text (lossily, for binary)."""
    attributes = ", ".join(f"{k}={v}" for k, v in msg.attributes)
    body = msg.body.decode("utf-8", errors="replace")
    return f"message {msg.id} from {msg.queue} (attempt {msg.attempt}) [{attributes}]: {body}"
