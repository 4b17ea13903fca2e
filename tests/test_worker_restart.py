"""When `planhat-sync worker` starts itself again (worker/cli/restart.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from worker.cli.restart import MAX_PAUSE, RESTARTS_ENV, restart_pause, restarts_so_far


def test_a_crash_after_it_was_consuming_restarts_with_a_doubling_pause() -> None:
    pauses = [restart_pause(1, was_ready=True, asked_to_stop=False, restarts=n) for n in range(8)]
    assert pauses == [1.0, 2.0, 4.0, 8.0, 16.0, MAX_PAUSE, MAX_PAUSE, MAX_PAUSE]


@pytest.mark.parametrize(
    ("status", "ready", "asked"),
    [
        (0, True, False),  # a clean exit
        (None, True, False),
        (1, True, True),  # SIGTERM / Ctrl-C / SIGQUIT: asked to stop
        (1, False, False),  # never consumed: a wrong option or setting would only fail again
    ],
)
def test_what_is_never_restarted(status: object, ready: bool, asked: bool) -> None:
    assert restart_pause(status, was_ready=ready, asked_to_stop=asked, restarts=0) is None


def test_the_count_starts_anew_after_a_steady_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RESTARTS_ENV, "4")
    assert restarts_so_far(ran_for=5.0) == 4
    assert restarts_so_far(ran_for=3600.0) == 0
    monkeypatch.setenv(RESTARTS_ENV, "garbage")
    assert restarts_so_far(ran_for=5.0) == 0


def test_a_restart_replaces_the_process_with_the_same_command() -> None:
    # A program that restarts itself twice through restart(), then exits: the same pid
    # every time (exec, so signals and a supervisor still see one process), counting.
    program = (
        "import os, sys\n"
        "from worker.cli.restart import RESTARTS_ENV, restart\n"
        "n = int(os.environ.get(RESTARTS_ENV, '0'))\n"
        "print('run', n, os.getpid(), sys.argv[1:], flush=True)\n"
        "if n < 2:\n"
        "    restart(0.01, 1, n)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != RESTARTS_ENV}
    done = subprocess.run(
        [sys.executable, "-c", program, "--flag"], env=env, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    runs = [line.split(maxsplit=3) for line in done.stdout.splitlines()]
    assert [run[1] for run in runs] == ["0", "1", "2"]
    assert len({run[2] for run in runs}) == 1  # one pid
    assert all(run[3] == "['--flag']" for run in runs)  # the same arguments
    assert done.stderr.count("starting it again in 0.01 s") == 2
