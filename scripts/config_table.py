"""Print docs/configuration.md's server settings table from server/config.py (flags, variables, defaults).

Usage: python scripts/config_table.py. tests/test_readme.py checks that docs/configuration.md holds exactly
this table, so a new or changed setting fails the tests until that page is regenerated.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import fields
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server.config import ServerConfig  # noqa: E402

SIZES = {2**20: "MiB", 2**30: "GiB"}
MEANINGS = {"log_level": "DEBUG, INFO, WARNING, ERROR or CRITICAL (JSON lines on stderr)"}  # no comment


def field_comments() -> dict[str, str]:
    """The end-of-line comment of each ServerConfig field, read from the source."""
    source = (ROOT / "server" / "config.py").read_text(encoding="utf-8")
    lines = source.splitlines()
    comments = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name == "ServerConfig":
            for stmt in node.body:
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    text = " ".join(lines[stmt.lineno - 1 : stmt.end_lineno])
                    comments[stmt.target.id] = text.split("#", 1)[1].strip() if "#" in text else ""
    return comments


def show_default(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, Path):
        return f"`./{value}`" if not value.is_absolute() else f"`{value}`"
    if isinstance(value, int) and value >= 2**20:
        for unit_bytes, unit in sorted(SIZES.items(), reverse=True):
            if value % unit_bytes == 0:
                return f"`{value}` ({value // unit_bytes} {unit})"
    if value == "":
        return "none"
    return f"`{value}`"


def table() -> str:
    defaults, comments = ServerConfig(), field_comments()
    rows = ["| flag | environment | default | meaning |", "| --- | --- | --- | --- |"]
    for f in fields(ServerConfig):
        value = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        if value is True:
            flag = f"{flag}` / `--no-{f.name.replace('_', '-')}"
        meaning = (comments.get(f.name) or MEANINGS.get(f.name, "")).replace("|", "/")
        rows.append(f"| `{flag}` | `RNN_{f.name.upper()}` | {show_default(value)} | {meaning} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
