"""Group commit: concurrent webhooks share one INSERT, one commit and one broker round trip.

Per event, the receiver's own work (verify, answer) is cheap next to what it waits for: a
commit and a Redis round trip. ``GroupCommit`` puts each request's event on a list; one
task per event loop takes what is waiting, up to ``size`` events, gathering for at most
``window`` seconds after the first of them arrived, and hands them to ``commit`` at once
(one multi-row ``INSERT … ON CONFLICT DO NOTHING RETURNING``, then one enqueue). Each
request then gets its own answer: its inbox id, None when it was stored already, or the
group's error. Nothing is answered before ``commit`` returns, so a 2xx still means
committed (ARCHITECTURE.md, invariant 1).

One group is written at a time: while it commits, the next one gathers. Under load that
alone fills groups, and the window only matters when requests trickle in (each then waits
at most ``window`` longer). Waiting requests are bounded by the receiver's in-flight limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from state.inbox import Key, key_of

Values = dict[str, Any]  # a new inbox row (``state.inbox.new_event``)
Commit = Callable[[Sequence[Values]], Awaitable[Sequence[int | None]]]


class GroupCommit:
    """``submit`` one event, get what ``commit`` said of it, once its group is committed.

    ``commit`` is given events with distinct keys: an event sent twice in one group (a
    sender retrying at once) is written once, and its second copy answered as a duplicate
    after the same commit, as it would be in the next group."""

    def __init__(self, commit: Commit, window: float, size: int) -> None:
        self._commit = commit
        self._window = window
        self._size = max(1, size)
        self._waiting: list[tuple[Values, asyncio.Future[int | None], float]] = []
        self._signal: asyncio.Future[None] | None = None
        self._want = 1
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, values: Values) -> int | None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            # A new event loop (a test client opens one per request): what waited on the
            # old one can no longer be answered there, and its task is gone with it.
            self._loop, self._waiting, self._signal = loop, [], None
            self._task = loop.create_task(self._run(loop), name="group-commit")
        future: asyncio.Future[int | None] = loop.create_future()
        self._waiting.append((values, future, loop.time()))
        if (
            self._signal is not None
            and not self._signal.done()
            and len(self._waiting) >= self._want
        ):
            self._signal.set_result(None)
        return await future

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done() and self._loop is asyncio.get_running_loop():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _until(
        self, loop: asyncio.AbstractEventLoop, count: int, timeout: float | None
    ) -> None:
        """Until ``count`` events wait, or ``timeout`` seconds have passed."""
        if len(self._waiting) >= count:
            return
        self._want = count
        self._signal = loop.create_future()
        try:
            await asyncio.wait_for(self._signal, timeout)
        except TimeoutError:
            pass
        finally:
            self._signal = None

    async def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            await self._until(loop, 1, None)
            gathering = self._waiting[0][2] + self._window - loop.time()
            if gathering > 0:
                await self._until(loop, self._size, gathering)
            group, self._waiting = self._waiting[: self._size], self._waiting[self._size :]
            await self._write(group)

    async def _write(self, group: list[tuple[Values, asyncio.Future[int | None], float]]) -> None:
        first: dict[Key, int] = {}
        unique: list[Values] = []
        for values, _, _ in group:
            key = key_of(values)
            if key not in first:
                first[key] = len(unique)
                unique.append(values)
        try:
            ids = await self._commit(unique)
        except asyncio.CancelledError:
            _fail(group, DatabaseClosing())
            raise
        except Exception as error:  # every request of the group answers as one alone would
            _fail(group, error)
            return
        answered: set[Key] = set()
        for values, future, _ in group:
            key = key_of(values)
            inbox_id = ids[first[key]] if key not in answered else None
            answered.add(key)
            if not future.done():
                future.set_result(inbox_id)


class DatabaseClosing(Exception):
    """The receiver stopped while this event's group was being written."""


def _fail(group: list[tuple[Values, asyncio.Future[Any], float]], error: Exception) -> None:
    for _, future, _ in group:
        if not future.done():
            future.set_exception(error)
