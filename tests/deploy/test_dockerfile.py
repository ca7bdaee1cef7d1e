"""deploy/Dockerfile: multi-stage, runs as a non-root user, and installs what pyproject packages."""
from __future__ import annotations

import re
from pathlib import Path

from ._util import ROOT

DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_runs_as_a_non_root_user_in_the_final_stage():
    instructions = _instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    users = [arg for word, arg in instructions[last_from:] if word == "USER"]
    assert users, "the runtime stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert user == "10001"
    # nothing after USER switches back to root
    after = instructions[[i for i, (w, _) in enumerate(instructions) if w == "USER"][-1]:]
    assert [w for w, _ in after if w == "USER"] == ["USER"]


def test_multi_stage_python_311_slim_with_the_runtime_environment():
    instructions = _instructions()
    froms = [arg for word, arg in instructions if word == "FROM"]
    assert len(froms) == 2 and all(f.startswith("python:3.11-slim") for f in froms)
    assert " AS builder" in froms[0]
    assert any(w == "COPY" and a.startswith("--from=builder") for w, a in instructions)
    text = DOCKERFILE.read_text()
    for env in ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "BALCAO_KEYS_DIR=/var/lib/balcao/keys",
                "BALCAO_VAR_DIR=/var/lib/balcao"):
        assert env in text, env
    assert ("WORKDIR", "/app") in instructions
    assert instructions[-1] == ("CMD", '["balcao", "--help"]')


def test_the_translation_step_compiles_every_catalogue(tmp_path):
    """Runs the Dockerfile's own `pybabel` RUN line on a copy of the services."""
    import os
    import shutil
    import subprocess
    import sys
    [step] = [arg for word, arg in _instructions() if word == "RUN" and "pybabel" in arg]
    shutil.copytree(ROOT / "services", tmp_path / "services",
                    ignore=shutil.ignore_patterns("*.mo", "__pycache__"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["sh", "-c", step], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    catalogues = list((tmp_path / "services").glob("*/translations/*/LC_MESSAGES/messages.po"))
    for po in catalogues:
        assert po.with_suffix(".mo").exists(), po


def test_the_build_context_copies_what_pip_install_needs():
    """pyproject's readme and py-modules must be in the image, and .dockerignore must not drop them."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    text = DOCKERFILE.read_text()
    readme = re.search(r'^readme\s*=\s*"([^"]+)"', pyproject, re.M).group(1)
    for needed in ("pyproject.toml", readme, "balcao_cli.py", "services", "deploy"):
        assert re.search(rf"^COPY .*\b{re.escape(needed)}\b", text, re.M), needed
    ignored = (ROOT / ".dockerignore").read_text().split()
    for needed in ("pyproject.toml", readme, "balcao_cli.py", "services", "deploy"):
        assert needed not in ignored
    for local in (".venv", "var", ".git", "**/__pycache__", ".env", "test-artifacts"):
        assert local in ignored, local
