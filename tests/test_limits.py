"""The one bounded cache, and that every table which outlives a scrape uses it."""

import re
from pathlib import Path

import pytest

from otel_bare_metal import limits
from otel_bare_metal.limits import BoundedCache

PACKAGE = Path(limits.__file__).parent


def test_lru_keeps_the_most_recently_used_and_hands_out_the_evicted():
    evicted = []
    cache = BoundedCache(3, on_evict=lambda k, v: evicted.append((k, v)))
    for k in "abc":
        cache.put(k, k.upper())
    assert cache.get("a") == "A"  # a hit: "a" is now the most recent
    cache.put("d", "D")
    assert evicted == [("b", "B")]
    assert "b" not in cache and len(cache) == 3
    assert cache.get("b", "gone") == "gone"


def test_insertion_order_cache_ignores_hits():
    cache = BoundedCache(2, lru=False)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert "a" not in cache and cache.get("b") == 2 and cache.get("c") == 3


def test_never_grows_past_its_limit():
    cache = BoundedCache(100, lru=False)
    for n in range(10_000):
        cache.put(n, n)
        assert len(cache) <= 100
    assert [cache.get(n) for n in (9_899, 9_900, 9_999)] == [None, 9_900, 9_999]


def test_clear_returns_what_it_held():
    cache = BoundedCache(5)
    cache.put(1, "x")
    assert cache.clear() == [(1, "x")] and len(cache) == 0


def test_a_limit_below_one_is_refused():
    with pytest.raises(ValueError):
        BoundedCache(0)


# A table that outlives a scrape and was bounded by hand: an OrderedDict, or a ``len(...) > N``
# check followed by a clear.  Those live in limits.py only.
HAND_BOUNDED = re.compile(r"OrderedDict|if len\([^)]*\) > [\w.]+:\s*\n\s*[\w.]+\.clear\(\)")


def test_no_module_bounds_a_cache_by_hand():
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                 if p.name != "limits.py" and HAND_BOUNDED.search(p.read_text())]
    assert offenders == [], "use limits.BoundedCache with a limit from limits.py"
