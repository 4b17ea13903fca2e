"""The helpdesk benchmarks' shared main (bench/bench_zendesk.py, bench/bench_intercom.py):
the issue's size or CI's, a Redis of its own, the run (tests/engine/helpdesk_e2e.py), its
report and the first problems; exits 1 when the sides disagree, a change did not cross or
an echo was written."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.engine.harness import RedisServer
from tests.engine.helpdesk_workload import Outcome, Size

Run = Callable[[Size, RedisServer, Path, dict[str, str]], Outcome]


def main(description: str, run: Run, full: Size, small: Size, logs_prefix: str) -> int:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--small", action="store_true", help="CI's size instead of the issue's")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE",
        help="a setting for the receiver, workers and beat (repeatable)",
    )  # fmt: skip
    args = parser.parse_args()
    engine_env = dict(item.partition("=")[::2] for item in args.env)
    size = small if args.small else full
    logs = Path(tempfile.mkdtemp(prefix=logs_prefix))
    print(f"logs in {logs}", flush=True)
    redis = RedisServer()
    redis.start()
    try:
        outcome = run(size, redis, logs, engine_env)
    finally:
        redis.stop()
    print("\n".join(outcome.report()))
    for problem in outcome.disagreements[:10] + outcome.not_crossed[:10]:
        print(f"  ! {problem}")
    failed = (
        outcome.disagreements
        or outcome.not_crossed
        or outcome.planhat_echo_writes
        or outcome.source_echo_writes
    )
    return 1 if failed else 0
