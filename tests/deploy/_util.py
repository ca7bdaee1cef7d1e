from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def balcao(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the `balcao` command of this checkout (as `python -m balcao_cli`)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "balcao_cli", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
