"""What the benches that compare arms share: each arm trains in a child process of its own (`SCRIPT --child ARM`),
so that its peak RSS is its own, and prints its figures as the last line of its output, in JSON."""

from __future__ import annotations

import json
import subprocess
import sys


def run_arm(script: str, arm: str, options: list[str]) -> dict:
    done = subprocess.run([sys.executable, script, "--child", arm, *options], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise SystemExit(f"the {arm} arm failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
