"""What `pip install balcao` installs: the services, without the test support.

The wheel is built from a copy of this checkout (pip's ordinary build, no dependencies) and
read back: no module in it imports pytest, and neither `testsupport/` nor any tests package
ships in it."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMPORTS_PYTEST = re.compile(r"^\s*(?:import|from)\s+_?pytest\b", re.MULTILINE)
NOT_SHIPPED = re.compile(r"(^|/)(testsupport|tests|conftest\.py)(/|$)")
LEFT_OUT = shutil.ignore_patterns(".git", ".venv", "var", "test-artifacts", "build", "*.egg-info", "__pycache__",
                                  ".pytest_cache", ".mypy_cache", ".ruff_cache", "bench")


def findings(wheel: Path) -> list[str]:
    """What must not be in the wheel: test support, tests, and modules that import pytest."""
    found = []
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if NOT_SHIPPED.search(name):
                found.append(f"{name}: test code")
            elif name.endswith(".py") and IMPORTS_PYTEST.search(archive.read(name).decode("utf-8", "replace")):
                found.append(f"{name}: imports pytest")
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "balcao"
    shutil.copytree(ROOT, source, ignore=LEFT_OUT)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(work / "dist"),
                           str(source)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    [built] = (work / "dist").glob("balcao-*.whl")
    return built


def test_the_wheel_carries_no_test_support_and_no_pytest_import(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    # it is the real package (the check below would pass on an empty wheel)
    assert {"services/common/messaging.py", "services/users/app.py", "balcao_cli.py",
            "services/common/templates/base.html"} <= names
    assert not findings(wheel)


def test_the_check_finds_a_pytest_import(tmp_path):
    """The scan is able to fail: a wheel with a module importing pytest, or with testsupport."""
    bad = tmp_path / "bad.whl"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("services/common/testing.py", '"""doc"""\nimport os\nimport pytest\n')
        archive.writestr("services/common/other.py", "from _pytest.fixtures import fixture\n")
        archive.writestr("testsupport/__init__.py", "")
        archive.writestr("services/common/fine.py", "# a comment: import pytest is fine here\nx = 'import pytest'\n")
    assert findings(bad) == ["services/common/testing.py: imports pytest", "services/common/other.py: imports pytest",
                             "testsupport/__init__.py: test code"]
