"""Key-value state committed with the acknowledgement, over the standard ``wasi:keyvalue``.

A handler opens the buckets its function's version lists (``kv_buckets`` in the manifest,
``sluice deploy --kv counts``); opening any other raises :class:`Denied`. Writes are buffered
and committed in the same transaction as the batch's acknowledgement, only if the handler
returns: an exception, a trap or a timeout discards them, so state is effectively-once per
acknowledged message. Reads see the invocation's own writes first, then committed state.
:meth:`Bucket.increment` adds its delta at commit, so concurrent increments never lose one::

    from sluice_sdk import kv

    def handle(batch):
        counts = kv.open("counts")
        for msg in batch:
            counts.increment(f"count:{msg.attribute('customer')}")

Natively, :func:`sluice_sdk.testing.run` gives the handler in-memory buckets (``kv=``) with the
same commit-on-return rule.
"""

from __future__ import annotations

import json as _json
import sys
from typing import Any, Iterator, Optional, Protocol, Union

from . import Error, _bytes

if sys.platform == "wasi":
    from componentize_py_types import Err
    from wit_world.imports import atomics, store

__all__ = ["Bucket", "Denied", "open"]


class Denied(Error):
    """The function's version does not list the bucket in ``kv_buckets``."""


class Backend(Protocol):
    """What :mod:`sluice_sdk.testing` installs for the duration of a run."""

    def open(self, bucket: str) -> None: ...
    def get(self, bucket: str, key: str) -> Optional[bytes]: ...
    def set(self, bucket: str, key: str, value: bytes) -> None: ...
    def delete(self, bucket: str, key: str) -> None: ...
    def keys(self, bucket: str) -> list[str]: ...
    def increment(self, bucket: str, key: str, delta: int) -> int: ...


backend: Optional[Backend] = None


class Bucket:
    """An open bucket: keys are strings (up to 1 KiB), values bytes (up to 1 MiB)."""

    def __init__(self, name: str, handle: Any):
        self.name = name
        self._handle = handle

    def get(self, key: str) -> Optional[bytes]:
        """The value of ``key``, or ``None`` when it has none."""
        if sys.platform == "wasi":
            return _host(self._handle.get, key)
        return _backend().get(self.name, key)

    def get_json(self, key: str) -> Any:
        """The value of ``key`` parsed as JSON, or ``None`` when it has none."""
        value = self.get(key)
        return None if value is None else _json.loads(value)

    def set(self, key: str, value: Union[bytes, str]) -> None:
        """Sets ``key`` to ``value`` (text is stored as UTF-8)."""
        if sys.platform == "wasi":
            _host(self._handle.set, key, _bytes(value))
        else:
            _backend().set(self.name, key, _bytes(value))

    def set_json(self, key: str, value: Any) -> None:
        """Sets ``key`` to ``value`` as JSON."""
        self.set(key, _json.dumps(value, separators=(",", ":")))

    def delete(self, key: str) -> None:
        """Deletes ``key``; nothing happens when it has no value."""
        if sys.platform == "wasi":
            _host(self._handle.delete, key)
        else:
            _backend().delete(self.name, key)

    def exists(self, key: str) -> bool:
        """Whether ``key`` has a value."""
        if sys.platform == "wasi":
            return _host(self._handle.exists, key)
        return _backend().get(self.name, key) is not None

    def keys(self, prefix: str = "") -> Iterator[str]:
        """The bucket's keys starting with ``prefix``, in byte order, a page at a time."""
        if sys.platform != "wasi":
            yield from (k for k in _backend().keys(self.name) if k.startswith(prefix))
            return
        cursor: Optional[str] = None
        while True:
            page = _host(self._handle.list_keys, cursor)
            yield from (k for k in page.keys if k.startswith(prefix))
            if page.cursor is None:
                return
            cursor = page.cursor

    def increment(self, key: str, delta: int = 1) -> int:
        """Adds ``delta`` to the number stored at ``key`` (0 when it has none) and returns the
        new value as this invocation sees it; the delta itself is applied at commit."""
        if sys.platform == "wasi":
            return _host(atomics.increment, self._handle, key, delta)
        return _backend().increment(self.name, key, delta)


def open(name: str) -> Bucket:
    """Opens bucket ``name``; raises :class:`Denied` when the function's version does not
    list it."""
    if sys.platform == "wasi":
        return Bucket(name, _host(store.open, name))
    _backend().open(name)
    return Bucket(name, None)


def _host(call, *args):
    try:
        return call(*args)
    except Err as e:
        error = e.value
        if type(error).__name__ == "Error_AccessDenied":
            raise Denied(
                "the function's version does not list this bucket; add it to kv_buckets "
                "(sluice deploy --kv BUCKET)"
            ) from None
        raise Error(str(getattr(error, "value", error))) from None


def _backend() -> Backend:
    if backend is None:
        raise Error("a bucket outside a handler run: natively, buckets work only inside sluice_sdk.testing.run(kv=...)")
    return backend
