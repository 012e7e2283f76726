"""README's "A client in ten lines" runs as written against a real server (only the address changes)."""

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_the_readme_client_example_trains_predicts_and_generates(server_address, capsys):
    section = README.split("## A client in ten lines\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(block.strip().splitlines()) <= 11 and '"127.0.0.1:50051"' in block
    exec(compile(block.replace("127.0.0.1:50051", server_address), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "progress" in out.lower() and "[" in out.splitlines()[-1]  # events, a prediction, a finish reason
