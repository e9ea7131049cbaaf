"""Setting up stored state in tests the way a leader writes it (through the fenced write)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from zdsync.rules import Record
from zdsync.store import Op, Store


def seed(store: Store, records: Iterable[Record] = (), *,
         failed: Mapping[int, str] | None = None, ops: Iterable[Op] = (),
         unlist_remapped: bool = False, now: float | None = None) -> None:
    """Store records, retry entries and ops under the lease (borrowing it if free)."""
    key = store.key("lock", "sync")
    token = store.r.get(key)
    borrowed = token is None
    if borrowed:
        token = "tests.helpers.seed"
        store.r.set(key, token)
    try:
        all_ops = list(ops) + store.retry_ops(failed or {}, [], time.time() if now is None
                                              else now)
        if unlist_remapped:
            all_ops += store.dequeue_ops("remap", store.remapped())
        store.write(token, list(records), all_ops)
    finally:
        if borrowed:
            store.r.delete(key)
