"""Fan-out of newly stored entries to ``follow`` queries.

The writer thread hands every committed group of rows to :meth:`Followers.publish` once (on
the event loop), whatever the number of followers. Followers of an object are found through a
dict keyed by object id (one lookup per related id of a new entry, not one check per
follower), followers of a component through a dict keyed by component; only followers with
neither filter look at every row. Matching rows go into the
follower's bounded backlog. A follower that falls more than ``backlog`` rows behind drops its
backlog and catches up from the database with a query that filters in SQL (see
``LogStore.query``), so a slow reader costs bounded memory and loses nothing.

All methods run on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mvirt.daemon.errors import ResourceExhaustedError

if TYPE_CHECKING:
    from mvirt.log.store import QueryFilter, Row

_SEP = "\n"  # how the store joins related ids (they cannot contain a newline)


class Follower:
    """One open follow query: its filter and the matching rows not yet sent."""

    def __init__(self, flt: QueryFilter, backlog: int) -> None:
        self.flt = flt
        self.backlog = backlog
        self.rows: list[Row] = []
        self.overflowed = False
        self.ready = asyncio.Event()

    def offer(self, rows: Sequence[Row]) -> None:
        """Adds matching ``rows`` (in arrival order) to the backlog, or marks an overflow."""
        if self.overflowed:
            return
        if len(self.rows) + len(rows) > self.backlog:
            self.overflowed = True
            self.rows = []
        else:
            self.rows.extend(rows)
        self.ready.set()

    def take(self) -> list[Row]:
        """The rows waiting (oldest first); the backlog is empty afterwards."""
        rows, self.rows = self.rows, []
        self.ready.clear()
        return rows

    def restart(self) -> None:
        """Leaves the overflowed state with an empty backlog."""
        self.rows = []
        self.overflowed = False
        self.ready.clear()


class Followers:
    """The open follow queries of one store."""

    def __init__(self, limit: int, backlog: int) -> None:
        self.limit = limit
        self.backlog = backlog
        self.count = 0
        """Read by the writer thread to skip publishing when nobody follows."""
        self._by_object: dict[str, list[Follower]] = {}
        self._by_component: dict[str, list[Follower]] = {}
        self._unindexed: list[Follower] = []

    def add(self, flt: QueryFilter) -> Follower:
        """Registers a follower, or raises ResourceExhaustedError at the limit."""
        if self.count >= self.limit:
            raise ResourceExhaustedError(
                f"{self.count} follow streams are open; the limit is {self.limit}",
                hint="close a follow stream or query without follow",
            )
        follower = Follower(flt, self.backlog)
        group, _ = self._group_of(follower)
        group.append(follower)
        self.count += 1
        return follower

    def remove(self, follower: Follower) -> None:
        """Unregisters ``follower`` (its stream ended)."""
        group, index = self._group_of(follower)
        if follower in group:
            group.remove(follower)
            self.count -= 1
        if index is not None and not group:
            for table in (self._by_object, self._by_component):
                if table.get(index) is group:
                    del table[index]

    def _group_of(self, follower: Follower) -> tuple[list[Follower], str | None]:
        flt = follower.flt
        if flt.object_id is not None:
            return self._by_object.setdefault(flt.object_id, []), flt.object_id
        if flt.component is not None:
            return self._by_component.setdefault(flt.component, []), flt.component
        return self._unindexed, None

    def publish(self, rows: Sequence[Row]) -> None:
        """Hands newly committed ``rows`` (in arrival order) to every follower they match."""
        for follower in self._unindexed:
            _offer_matching(follower, rows)
        if self._by_component:
            by_component: dict[str, list[Row]] = {}
            for row in rows:
                by_component.setdefault(row[4], []).append(row)
            for component, group in self._by_component.items():
                for follower in group:
                    _offer_matching(follower, by_component.get(component, ()))
        if not self._by_object:
            return
        matched: dict[Follower, list[Row]] = {}
        for row in rows:
            related = row[6]
            if not related:
                continue
            for object_id in related.split(_SEP):
                for follower in self._by_object.get(object_id, ()):
                    if follower.flt.matches(row):
                        matched.setdefault(follower, []).append(row)
        for follower, matching in matched.items():
            follower.offer(matching)


def _offer_matching(follower: Follower, rows: Sequence[Row]) -> None:
    matching = [row for row in rows if follower.flt.matches(row)]
    if matching:
        follower.offer(matching)
