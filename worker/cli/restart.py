"""Start the Celery worker again when it dies of an error nobody asked for.

Celery's consumer can die while Redis restarts: closing the lost connection, kombu
rebuilds a connection pool from a connection it already released and raises
``AttributeError: 'NoneType' object has no attribute 'hostname'`` (kombu
``transport/redis.py`` ``_connparams``, reached from
``Consumer.on_connection_error_after_connected``; the same family as
https://github.com/celery/kombu/issues/582). Celery calls that "Unrecoverable error" and
exits with status 1, and a worker that exits processes nothing until someone starts it
again. Our own tasks lose nothing (every event and outbox row is in the database), so the
worker replaces itself (``exec``: same pid, same process group, signals reach it as
before) after a short pause that doubles while it keeps crashing.

A stop someone asked for (SIGTERM, SIGINT, SIGQUIT: Celery's ``worker_shutting_down``),
a clean exit, or a worker that never became ready is never restarted.
"""

from __future__ import annotations

import os
import sys
import time

# How many times in a row the worker has restarted itself; in the environment, because
# ``exec`` keeps nothing else.
RESTARTS_ENV = "PLANHAT_SYNC_WORKER_RESTARTS"
FIRST_PAUSE = 1.0  # seconds before the first restart
MAX_PAUSE = 30.0
STEADY_AFTER = 60.0  # a worker that ran this long before crashing starts the count anew


def restart_pause(
    exit_code: object, *, was_ready: bool, asked_to_stop: bool, restarts: int
) -> float | None:
    """Seconds to wait before starting again, or None to exit with ``exit_code``. Only a
    worker that was consuming restarts: one that never got there (a wrong option, a broker
    it cannot reach at startup) would only fail again."""
    if not was_ready or asked_to_stop or exit_code in (0, None):
        return None
    return min(MAX_PAUSE, FIRST_PAUSE * 2.0**restarts)


def restarts_so_far(ran_for: float) -> int:
    """Restarts in a row before this run; none if this run was a steady one."""
    if ran_for >= STEADY_AFTER:
        return 0
    try:
        return max(0, int(os.environ.get(RESTARTS_ENV, "0")))
    except ValueError:
        return 0


def restart(pause: float, exit_code: object, restarts: int) -> None:
    """Say why in one line, wait, and replace this process with the same command."""
    print(
        f"planhat-sync worker: Celery stopped with exit status {exit_code} (an error it could"
        f" not recover from, see above); starting it again in {pause:g} s",
        file=sys.stderr,
        flush=True,
    )
    time.sleep(pause)
    os.environ[RESTARTS_ENV] = str(restarts + 1)
    # orig_argv is the command as started (``planhat-sync worker ...`` or ``python -m``).
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])  # noqa: S606 (our own argv)
