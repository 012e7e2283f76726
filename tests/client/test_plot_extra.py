"""matplotlib is the client's `plot` extra: without it `rnnctl plot` says how to install it (no traceback),
and the server's own dependencies do not include it."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Runs rnnctl with matplotlib made unimportable, as in the server image where it is not installed.
SCRIPT = """
import sys
sys.modules["matplotlib"] = None  # import matplotlib now raises ImportError
from client.cli import main
sys.argv = ["rnnctl", "--address", "127.0.0.1:1", "plot", "some-model"]
main()
"""


def test_plot_without_matplotlib_names_the_extra():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60,
                            cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1, result
    assert "matplotlib" in result.stderr and "rnn-service[plot]" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_matplotlib_is_a_client_extra_not_a_server_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(dep.startswith("matplotlib") for dep in project["dependencies"])
    assert any(dep.startswith("matplotlib") for dep in project["optional-dependencies"]["plot"])
    assert any(dep.startswith("matplotlib") for dep in project["optional-dependencies"]["test"])
