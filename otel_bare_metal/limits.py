"""Every size limit on what the exporter keeps in memory, in one place, and the one bounded cache.

Whatever a host, a device or a client does — mounts that come and go, a hostile procfs tree,
60 000 probe targets, a flood of distinct log messages — nothing the exporter remembers grows
past these numbers.  Each table that outlives a scrape is a :class:`BoundedCache` sized here.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

# --------------------------------------------------------------------------- the limits

#: Probe targets whose device (connection and learned facts) is kept between probes.
PROBE_DEVICES = 256
#: Probe targets, of those, whose reader (SDK storage and encoder caches: about 10 KB for a dead
#: device, several times that for a live one) is kept between probes; the others get a fresh
#: reader per probe.
PROBE_READERS = 32
#: Bcrypt-accepted credentials remembered by --web.config.file basic auth.
AUTH_CACHE = 256
#: Bcrypt-refused credentials remembered (apart from the accepted ones, which a flood of wrong
#: passwords therefore cannot push out).
AUTH_FAILURES_CACHE = 4096
#: Requests that may wait for the one bcrypt check at a time; past it a request gets 503 at once.
#: A right password arriving behind a burst of wrong ones waits for at most this many checks.
AUTH_WAITING = 8
#: Longest a request waits for its bcrypt check when it has no X-Prometheus-Scrape-Timeout-Seconds.
AUTH_WAIT_SECONDS = 10.0
#: Largest --web.config.file read (the format needs a few KB).
WEB_CONFIG_BYTES = 1 << 20
#: Cached ``name{labels} `` prefixes in the fast Prometheus text encoder (a 1024-CPU host has
#: about 10 000 series; 100 000 mounts × 5 instruments × 3 states is 1.5 million: those just
#: rebuild what falls out).
SERIES_PREFIXES = 200_000
#: Cached attribute dicts of filesystem and classic-named series.
ATTRIBUTE_SETS = 100_000
#: Distinct keys a rate-limited log remembers (the oldest is forgotten first).
LOG_KEYS = 1_000
#: Lines all rate-limited logs together write per interval before they only count what they drop.
LOG_LINES_PER_INTERVAL = 100
#: Seconds between two lines with the same key, and the budget's interval.
LOG_INTERVAL = 60.0
#: Largest procfs file read (a 100 000-mount mountinfo is about 10 MB).
PROCFS_READ_BYTES = 64 << 20

# --------------------------------------------------------------------------- the cache

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """A mapping that never holds more than ``maxsize`` entries.

    ``put`` evicts the least recently used entry past the limit and hands it to ``on_evict``
    (a device to close, say).  With ``lru=False`` a hit does not count as a use — eviction is
    then oldest-inserted first, and ``get`` is the plain dict lookup, for caches consulted once
    per point on the scrape's hot path.  Not locked: callers that share one across threads
    hold their own lock (or, for pure memo caches, accept that two threads may compute the
    same value twice).
    """

    def __init__(self, maxsize: int, *, lru: bool = True, on_evict: Callable[[K, V], None] | None = None):
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        self.maxsize = maxsize
        self._data: OrderedDict[K, V] = OrderedDict()
        self._on_evict = on_evict
        if lru:
            self.get = self._get_lru  # type: ignore[method-assign]  # chosen once per instance: no branch per lookup
        else:
            self.get = self._data.get  # type: ignore[method-assign,assignment]  # dict.get is overloaded; this call shape is one of them

    def get(self, key: K, default: V | None = None) -> V | None:  # replaced per instance in __init__
        raise NotImplementedError

    def _get_lru(self, key: K, default: V | None = None) -> V | None:
        data = self._data
        value = data.get(key, _MISSING)
        if value is _MISSING:
            return default
        data.move_to_end(key)
        return value  # type: ignore[return-value]  # not _MISSING here, so a V

    def put(self, key: K, value: V) -> V:
        data = self._data
        data[key] = value
        data.move_to_end(key)
        while len(data) > self.maxsize:
            old_key, old_value = data.popitem(last=False)
            if self._on_evict is not None:
                self._on_evict(old_key, old_value)
        return value

    def pop(self, key: K, default: V | None = None) -> V | None:
        return self._data.pop(key, default)

    def clear(self) -> list[tuple[K, V]]:
        """Forget everything; return what was held (to close it)."""
        items = list(self._data.items())
        self._data.clear()
        return items

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)


_MISSING = object()
