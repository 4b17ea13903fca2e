"""Progress on the terminal (rich): backfills, replays and retries of dead letters.

Drawn on standard error, so what a command prints on standard output (replay's JSON)
stays parseable, and only when that is a terminal (``TTY_COMPATIBLE=1`` forces it): a log
file or a pipe gets the summary lines, not frames of a bar.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from worker.intake.backfill import Tally


def _progress(*columns: ProgressColumn) -> Progress:
    console = Console(stderr=True)
    return Progress(*columns, console=console, disable=not console.is_terminal)


class BackfillDisplay:
    """One row per list of a backfill: pages read, objects stored and already known.
    Satisfies ``worker.intake.backfill.Progress``."""

    def __init__(self) -> None:
        self._progress = _progress(
            SpinnerColumn(finished_text="[green]✓"),
            TextColumn("{task.description:<16}"),
            BarColumn(),
            TextColumn("{task.fields[pages]:>5} pages"),
            TextColumn("{task.fields[stored]:>7} stored"),
            TextColumn("{task.fields[known]:>7} already known"),
            TimeElapsedColumn(),
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> BackfillDisplay:
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def begin(self, name: str, resumed: bool) -> None:
        label = f"{name} (resumed)" if resumed else name
        self._tasks[name] = self._progress.add_task(label, total=None, pages=0, stored=0, known=0)

    def advance(self, tally: Tally) -> None:
        self._progress.update(
            self._tasks[tally.name],
            completed=tally.pages,
            pages=tally.pages,
            stored=tally.stored,
            known=tally.known,
        )

    def finish(self, tally: Tally) -> None:
        self._progress.update(self._tasks[tally.name], total=tally.pages, completed=tally.pages)


@contextmanager
def counted(description: str) -> Iterator[Callable[[int, int], None]]:
    """A bar of ``done`` of ``total`` items; yields ``tick(done, total)``. Drawn from the
    first tick: a command that fails before doing anything prints its one line alone."""
    progress = _progress(
        SpinnerColumn(finished_text="[green]✓"),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    task = progress.add_task(description, total=None)

    def tick(done: int, total: int) -> None:
        if not progress.live.is_started:
            progress.start()
        progress.update(task, completed=done, total=total)

    try:
        yield tick
    finally:
        progress.stop()
