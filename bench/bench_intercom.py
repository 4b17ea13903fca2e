"""Benchmark: Intercom ⇄ Planhat at the issue's size, both stand-ins as processes.

    .venv/bin/python bench/bench_intercom.py            # 500 tickets, 50 companies, 3 min
    .venv/bin/python bench/bench_intercom.py --small    # CI's size: 60, 15, 15 s

Runs tests/engine/intercom_e2e.py (the same code the test runs): the receiver, two
workers and beat on PostgreSQL (127.0.0.1:5432) and a Redis of its own; the tickets
created in Intercom, then 20% of them changed in Intercom and 10% in Planhat at random
moments over the window. Prints whether both sides agree, each direction's lag, the
writes on each side against those needed, echo writes, and the worker's calls against
the minimum. Exits 1 when the sides disagree, a change did not cross or an echo was
written. The processes' logs stay in the directory it prints.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.helpdesk import main  # noqa: E402
from tests.engine.intercom_e2e import FULL, SMALL, run  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(__doc__.split("\n\n")[0], run, FULL, SMALL, "phs-intercom-"))
