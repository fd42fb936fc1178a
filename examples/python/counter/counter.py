"""Counts messages per customer, effectively once: each message increments
``count:<customer attribute>`` in bucket ``counts`` and remembers its id under ``seen:<id>`` in
bucket ``seen``. The writes commit with the batch's acknowledgement, so a retried batch never
counts twice. A message without a ``customer`` attribute is dead-lettered, saying why.

Deploy with the buckets it opens::

    sluice kv create counts
    sluice kv create seen --ttl 1h
    sluice deploy counter.wasm --name counter --queue orders --kv counts --kv seen
"""

from sluice_sdk import Outcome, kv


def handle(batch):
    outcome = Outcome()
    counts = kv.open("counts")
    seen = kv.open("seen")
    for msg in batch:
        customer = msg.attribute("customer")
        if customer is None:
            outcome.dead_letter(msg, "no `customer` attribute: send it with --attr customer=NAME")
            continue
        counts.increment(f"count:{customer}")
        seen.set(f"seen:{msg.id}", "1")
    return outcome
