"""One stamped buffer type for every input stream of the windower (frames, audio chunks, transcripts).

Each item covers a span of sensor time [start, end) (integer ns, end exclusive): a camera frame is the
instant [stamp, stamp + 1 ns), an audio chunk the time of its samples, a transcript the speech it
transcribes (or the instant of its stamp when no end is known). Items are kept sorted by start, each
with a `used` flag set once a window took it. The buffer does the bookkeeping that makes every accepted
item accounted for (`Windower.accounting()`): when an item leaves the buffer it is either counted as
used (`used_evicted`) or as evicted with a reason in the shared `DropCounter`
("<stream>.<reason>", e.g. "frames.outside_windows").
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from emotion_ros.ingest.errors import DropCounter


@dataclass(eq=False)
class Item:
    """One buffered thing: its time span, its payload, whether a window used it, and per-item scratch
    (e.g. a frame re-scaled to another size, so each size is computed once)."""

    start: int
    end: int
    value: Any
    used: bool = False
    cache: dict = field(default_factory=dict)


class StampedBuffer:
    """Items of one stream sorted by start stamp; eviction counted per reason; not thread-safe (the
    Windower holds its lock around every call).

    unique=True rejects a second item with the same start stamp (`insert` returns None: the caller counts
    the drop); unique=False keeps both, in arrival order (transcripts). max_items caps the buffer: the
    oldest items go first, evicted as "buffer_limit".
    """

    def __init__(self, stream: str, counter: DropCounter, *, unique: bool = True, max_items: int | None = None):
        self.stream = stream
        self.counter = counter
        self.unique = unique
        self.max_items = max_items
        self.used_evicted = 0  # items that left the buffer after a window used them
        self._items: list[Item] = []
        self._starts: list[int] = []
        self._reset_time()

    def _reset_time(self) -> None:
        self.max_span = 0  # longest end - start seen since the last clear (bounds overlap searches)

    # ------------------------------------------------------------------ contents
    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Item]:
        return iter(self._items)

    def __getitem__(self, i):
        return self._items[i]

    @property
    def starts(self) -> list[int]:
        """Start stamps in order (read-only view for bisecting; do not modify)."""
        return self._starts

    def insert(self, start: int, value, end: int | None = None) -> Item | None:
        """Add an item covering [start, end) (end None: the instant [start, start + 1)); None when unique
        and an item with this start exists (nothing changed)."""
        end = start + 1 if end is None or end <= start else end
        i = bisect.bisect_right(self._starts, start)
        if self.unique and i > 0 and self._starts[i - 1] == start:
            return None
        item = Item(start, end, value)
        self._items.insert(i, item)
        self._starts.insert(i, start)
        self.max_span = max(self.max_span, end - start)
        if self.max_items is not None:
            while len(self._items) > self.max_items:
                self._release(self._items.pop(0), "buffer_limit")
                self._starts.pop(0)
        return item

    def scan_from(self, t: int) -> Iterator[Item]:
        """Items in start order, beginning with the first one that may still cover time t (a superset:
        callers check `end > t` themselves)."""
        j = bisect.bisect_left(self._starts, t - self.max_span)
        return iter(self._items[j:])

    def overlapping(self, lo: int, hi: int) -> list[Item]:
        """Items whose span overlaps [lo, hi) (start < hi and end > lo), in start order."""
        j = bisect.bisect_left(self._starts, lo - self.max_span)
        k = bisect.bisect_left(self._starts, hi)
        return [it for it in self._items[j:k] if it.end > lo]

    def first_at_or_after(self, t: int) -> int | None:
        """Earliest sensor time >= t that some item covers (None when no item reaches past t)."""
        for it in self.scan_from(t):
            if it.end > t:
                return max(it.start, t)
        return None

    # ------------------------------------------------------------------ leaving the buffer
    def _release(self, item: Item, reason: str) -> None:
        if item.used:
            self.used_evicted += 1
        else:
            self.counter.evict(self.stream, reason)

    def evict_before(self, keep_from: int, reason_of: Callable[[Item], str]) -> int:
        """Remove every item that ends at or before keep_from (nothing left of it a window could use);
        unused ones are counted under reason_of(item). Returns how many left."""
        n = bisect.bisect_left(self._starts, keep_from)  # only these can end at/before keep_from
        if n == 0:
            return 0
        gone = [it for it in self._items[:n] if it.end <= keep_from]
        if not gone:
            return 0
        for it in gone:
            self._release(it, reason_of(it))
        if len(gone) == n:
            del self._items[:n], self._starts[:n]
        else:  # a long item (e.g. a transcript span) outlives shorter ones that started after it
            self._items = [it for it in self._items if it.end > keep_from]
            self._starts = [it.start for it in self._items]
        return len(gone)

    def clear(self, reason: str) -> None:
        """Remove everything (unused items counted under `reason`)."""
        for it in self._items:
            self._release(it, reason)
        self._items = []
        self._starts = []
        self._reset_time()
