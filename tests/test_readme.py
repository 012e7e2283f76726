"""README.md and docs/*.md as a specification: the configuration table, rnnctl commands, RPC list and code
examples are checked against the code, so a renamed flag, command, RPC or JSON field fails here; every Python
block compiles and every relative link and anchor between the pages resolves."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from google.protobuf import json_format
from google.protobuf.message_factory import GetMessageClass

from client.cli import cli
from rnn.v1 import inference_service_pb2, model_service_pb2, training_service_pb2

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
PAGES = {p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8")
         for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]}
SERVICES = [
    inference_service_pb2.DESCRIPTOR.services_by_name["InferenceService"],
    model_service_pb2.DESCRIPTOR.services_by_name["ModelService"],
    training_service_pb2.DESCRIPTOR.services_by_name["TrainingService"],
]


def section(title: str) -> str:
    """The text of `## title` up to the next `## ` heading, in the one page (README or docs/) holding it."""
    found = [m.group(1) for text in PAGES.values()
             if (m := re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M))]
    assert len(found) == 1, f"expected one '## {title}' in README.md and docs/*.md, found {len(found)}"
    return found[0]


def config_table() -> str:
    spec = importlib.util.spec_from_file_location("config_table", ROOT / "scripts" / "config_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.table()


def test_readme_opens_with_the_two_commands():
    assert README.startswith("# rnn-service\n\n```\nmake run ")
    assert "\nmake test " in README.split("```")[1]


def test_configuration_table_is_the_one_generated_from_server_config():
    assert config_table() in section("Configuration"), (
        "the README's configuration table is stale: replace it with `python scripts/config_table.py`"
    )


def _command_paths(group: click.Group, prefix: str = "") -> list[str]:
    paths = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            paths += _command_paths(command, f"{prefix}{name} ")
        else:
            paths.append(prefix + name)
    return paths


def test_every_rnnctl_command_has_a_row_with_an_example():
    text = section("rnnctl")
    for path in _command_paths(cli):
        assert f"| `{path}" in text, f"rnnctl {path} is missing from the README's rnnctl table"
        assert f"`rnnctl {path}" in text, f"rnnctl {path} has no example in the README"


def _grpcurl_bodies(text: str, method: str) -> list[str]:
    """Every `-d` body given for `method` in the RPC table: `Method` `{...} {...}`."""
    bodies = []
    for match in re.finditer(rf"`{method}` `(\{{.*?\}})`(?: \(|\s*\|)", text):
        decoder, raw, pos = json.JSONDecoder(), match.group(1), 0
        while pos < len(raw):
            obj, end = decoder.raw_decode(raw, pos)
            bodies.append(json.dumps(obj))
            pos = end + (1 if raw[end : end + 1] == " " else 0)
    return bodies


@pytest.mark.parametrize("method", [m for s in SERVICES for m in s.methods], ids=lambda m: m.name)
def test_every_rpc_has_a_python_example_and_a_grpcurl_body_that_parses(method):
    text = section("RPCs")
    assert f"| {method.name} " in text, f"{method.full_name} is missing from the README's RPC table"
    bodies = _grpcurl_bodies(text, method.name)
    assert bodies, f"{method.full_name} has no grpcurl body in the README"
    request_class = GetMessageClass(method.input_type)
    for body in bodies:
        json_format.Parse(body, request_class())  # raises on a wrong field name, enum or type


def _engine_examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", section("Engine API (Python)"), re.S)


def test_engine_section_has_the_layer_and_the_training_examples():
    blocks = _engine_examples()
    assert len(blocks) == 2
    assert "load_state_dict({k: v.detach().numpy() for k, v in torch_lstm.state_dict().items()})" in blocks[0]
    assert "from rnn_engine.trainer import train" in blocks[1] and ".generate(" in blocks[1]


@pytest.mark.slow
@pytest.mark.parametrize("index", [0, 1], ids=["layer-and-torch", "train-and-generate"])
def test_engine_examples_run_as_written(index, tmp_path):
    if index == 0:
        pytest.importorskip("torch", reason="the layer example compares with PyTorch")
    script = tmp_path / "example.py"
    script.write_text(_engine_examples()[index], encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=280, env={"PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1",
                                            "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _outside_code(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _anchors(text: str) -> set[str]:
    return {_slug(h) for h in re.findall(r"^#{1,6} (.*)$", _outside_code(text), re.M)}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_python_block_compiles(page):
    for block in re.findall(r"^```python\n(.*?)^```", PAGES[page], re.S | re.M):
        compile(block, page, "exec")  # raises SyntaxError naming the page


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_relative_link_and_anchor_resolves(page):
    base = (ROOT / page).parent
    for target in re.findall(r"\]\(([^)\s]+)\)", _outside_code(PAGES[page])):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto
        path, _, anchor = target.partition("#")
        file = (base / path).resolve() if path else ROOT / page
        assert file.exists(), f"{page}: link to {target} points to a missing file"
        if anchor and file.suffix == ".md":
            assert anchor in _anchors(file.read_text(encoding="utf-8")), f"{page}: no heading for #{anchor}"


def test_the_front_page_stays_short_and_links_every_docs_page():
    assert len(README.splitlines()) <= 120  # the measured figures live in docs/performance.md
    assert "docs/performance.md" in PAGES and "\n### " not in section("Performance in short")
    for page in PAGES:
        if page.startswith("docs/"):
            assert f"]({page}" in README, f"README does not link {page}"
