"""Every InvalidInput the engine raises carries its field (`InvalidInput(message, field=...)`): the server's
BadRequest field is that attribute and nothing parses it out of the message text (server/errors.py)."""

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "rnn_engine"
# files allowed some calls without field= (none left; a count here may only go down)
PENDING: dict[str, int] = {}


def _calls_without_field(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, "id", getattr(n.func, "attr", None)) == "InvalidInput"
            and not any(k.arg == "field" for k in n.keywords)]


def test_every_invalid_input_raised_in_the_engine_names_its_field():
    missing = {str(p.relative_to(ENGINE)): lines for p in sorted(ENGINE.rglob("*.py"))
               if (lines := _calls_without_field(p))}
    over = {f: lines for f, lines in missing.items() if len(lines) > PENDING.get(f, 0)}
    assert over == {}, "InvalidInput(...) without field= (file: lines)"


def test_the_check_finds_a_call_without_a_field(tmp_path):
    src = tmp_path / "m.py"
    src.write_text('raise InvalidInput("x: bad", field="x")\nraise errors.InvalidInput("y: bad")\n')
    assert _calls_without_field(src) == [2]
