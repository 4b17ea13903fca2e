"""Benchmark: Zendesk ⇄ Planhat at the issue's size, both stand-ins as processes.

    .venv/bin/python bench/bench_zendesk.py            # 1,000 tickets, 100 companies, 5 min
    .venv/bin/python bench/bench_zendesk.py --small    # CI's size: 100, 10, 20 s

Runs tests/engine/zendesk_e2e.py (the same code the test runs): the receiver, two
workers and beat on PostgreSQL (127.0.0.1:5432) and a Redis of its own; the tickets
created in Zendesk, then 20% of them changed in Zendesk and 10% in Planhat at random
moments over the window. Prints whether both sides agree, each direction's lag, the
writes on each side against those needed, echo writes, and the worker's calls against
the minimum. Exits 1 when the sides disagree, a change did not cross or an echo was
written. The processes' logs stay in the directory it prints.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.engine.harness import RedisServer  # noqa: E402
from tests.engine.zendesk_e2e import FULL, SMALL, run  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="CI's size instead of the issue's")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE",
        help="a setting for the receiver, workers and beat (repeatable)",
    )  # fmt: skip
    args = parser.parse_args()
    engine_env = dict(item.partition("=")[::2] for item in args.env)
    size = SMALL if args.small else FULL
    logs = Path(tempfile.mkdtemp(prefix="phs-zendesk-"))
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


if __name__ == "__main__":
    sys.exit(main())
