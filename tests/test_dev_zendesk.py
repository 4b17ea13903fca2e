"""``planhat-sync dev`` shows a Zendesk ticket crossing both ways on the embedded default:
the Zendesk stand-in and the Planhat sandbox as processes of their own, each pointed at
dev's receiver, and nothing set in the environment."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import free_port_pair


def run_dev(data_dir: Path) -> str:
    exe = str(Path(sys.executable).with_name("planhat-sync"))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PLANHAT_", "DATABASE_", "ZENDESK_", "STANDARD_"))
    }
    args = [exe, "dev", "--port", str(free_port_pair()), "--data-dir", str(data_dir), "--no-serve"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def crossings(out: str) -> tuple[str, str]:
    """The ticket's id, from Zendesk's line and Planhat's, and the status Zendesk shows."""
    opened = re.search(r"opens Zendesk ticket #(\d+) \(new, high\)", out)
    mirrored = re.search(r"Planhat ticket [0-9a-f]{24}  Cannot export invoices  status new  "
                         r"severity high  company [0-9a-f]{24}", out)  # fmt: skip
    solved = re.search(r"Zendesk ticket #(\d+)  status (\w+)", out)
    assert opened, out
    assert mirrored, out
    assert solved, out
    assert solved.group(1) == opened.group(1), out
    return opened.group(1), solved.group(2)


def test_dev_shows_a_zendesk_ticket_reaching_planhat_and_a_csm_edit_reaching_zendesk(
    tmp_path: Path,
) -> None:
    first = run_dev(tmp_path)
    ticket, status = crossings(first)
    assert status == "solved"
    assert "No ZENDESK_* settings: the Zendesk stand-in is on http://127.0.0.1:" in first

    # and started again on the same data (Planhat still holds the first ticket), a new
    # ticket crosses both ways too
    again, status_again = crossings(run_dev(tmp_path))
    assert again != ticket
    assert status_again == "solved"
