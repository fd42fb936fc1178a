"""A Python handler that does nothing: acknowledges every batch. `sluice bench` measures the
cost of a fresh instance of a large (interpreter-sized) component with it."""


def handle(batch):
    return None
