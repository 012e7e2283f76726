"""Data readers and splits: formats, header detection, errors naming file/row/field, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rnn_engine.data import read_labelled, read_series, read_tagged, read_text, split, split_text
from rnn_engine.errors import InvalidInput, NotFound

SHARED = Path("/work/shared/data")


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


# ---------------------------------------------------------------------------------------------- text
def test_read_text_reads_paths_and_takes_other_strings_literally(tmp_path):
    path = write(tmp_path, "c.txt", b"\xef\xbb\xbfhello\r\nw\xc3\xb6rld\n")
    assert read_text(path) == "hello\nwörld\n"
    assert read_text(str(path)) == "hello\nwörld\n"
    assert read_text("just some text") == "just some text"


@pytest.mark.parametrize("content", ["", "  \n\t\n"])
def test_read_text_refuses_an_empty_corpus(tmp_path, content):
    with pytest.raises(InvalidInput, match="corpus is empty"):
        read_text(write(tmp_path, "e.txt", content))
    with pytest.raises(InvalidInput, match="corpus is empty"):
        read_text(content)


def test_read_text_errors_name_the_file(tmp_path):
    with pytest.raises(NotFound, match="missing.txt: no such file"):
        read_text(tmp_path / "missing.txt")
    with pytest.raises(InvalidInput, match=r"bad.txt: expected UTF-8 text, got invalid byte at offset 2"):
        read_text(write(tmp_path, "bad.txt", b"ab\xff"))
    with pytest.raises(InvalidInput, match="expected a str or a path"):
        read_text(b"bytes")


# ---------------------------------------------------------------------------------------------- labelled
@pytest.mark.parametrize("header", ["sequence\tlabel\n", "name\tlanguage\n", ""])
def test_tsv_with_or_without_a_header(tmp_path, header):
    path = write(tmp_path, "d.tsv", header + "Khoury\tArabic\n\nSmith\tEnglish \nvan der Berg\tDutch\n")
    assert read_labelled(path) == [("Khoury", "Arabic"), ("Smith", "English"), ("van der Berg", "Dutch")]


def test_tsv_header_can_be_forced_either_way(tmp_path):
    path = write(tmp_path, "d.txt", "alpha\tbeta\nx\ty\n")
    assert read_labelled(path) == [("alpha", "beta"), ("x", "y")]
    assert read_labelled(path, header=True) == [("x", "y")]


def test_jsonl_accepts_sequence_or_text_keys_and_integer_labels(tmp_path):
    lines = [{"sequence": "good film", "label": "pos"}, {"text": "bad", "label": 0}]
    path = write(tmp_path, "d.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n")
    assert read_labelled(path) == [("good film", "pos"), ("bad", "0")]
    same = write(tmp_path, "d.data", path.read_text())
    assert read_labelled(same) == read_labelled(path)  # auto-detected by content


@pytest.mark.parametrize(
    "name, content, fmt, match",
    [
        ("a.tsv", "x\ty\nno tab here\n", "auto", r"a.tsv:2: expected 'sequence<TAB>label'"),
        ("a.tsv", "x\ty\n\t\ty\n", "tsv", r"a.tsv:2: sequence: expected a non-empty value"),
        ("a.tsv", "x\ty\nz\t \n", "tsv", r"a.tsv:2: label: expected a non-empty value"),
        ("a.tsv", "sequence\tlabel\n", "tsv", r"a.tsv: expected at least one labelled example"),
        ("a.jsonl", '{"text": "a", "label": "b"}\n{oops\n', "auto", r"a.jsonl:2: expected one JSON object"),
        ("a.jsonl", "[1, 2]\n", "jsonl", r"a.jsonl:1: expected a JSON object, got list"),
        ("a.jsonl", '{"label": "b"}\n', "jsonl", r"a.jsonl:1: sequence: expected a non-empty string"),
        ("a.jsonl", '{"text": "a", "label": null}\n', "jsonl", r"a.jsonl:1: label: expected a non-empty"),
        ("a.tsv", "x\ty\n", "csv", "fmt: expected"),
    ],
)
def test_labelled_errors_say_file_line_and_field(tmp_path, name, content, fmt, match):
    with pytest.raises(InvalidInput, match=match):
        read_labelled(write(tmp_path, name, content), fmt=fmt)


@pytest.mark.skipif(not (SHARED / "names.tsv").exists(), reason="shared data set not present")
def test_reads_the_shared_names_data_set():
    rows = read_labelled(SHARED / "names.tsv")
    assert len(rows) == 20050 and rows[0] == ("Khoury", "Arabic")
    assert len({label for _, label in rows}) == 18


# ---------------------------------------------------------------------------------------------- tagged
def test_read_tagged_pairs_tokens_with_tags(tmp_path):
    path = write(tmp_path, "t.jsonl", json.dumps({"tokens": ["The", "cat"], "tags": ["DET", "NOUN"]}) + "\n")
    assert read_tagged(path) == [(["The", "cat"], ["DET", "NOUN"])]


@pytest.mark.parametrize(
    "obj, match",
    [
        ({"tokens": ["a", "b"], "tags": ["X"]}, r"t.jsonl:1: tags: expected one tag per token \(2\), got 1"),
        ({"tokens": [], "tags": []}, r"t.jsonl:1: tokens: expected a non-empty list"),
        ({"tokens": ["a", 3], "tags": ["X", "Y"]}, r"tokens: expected a non-empty list of non-empty strings"),
        ({"tokens": ["a"]}, r"tags: expected"),
    ],
)
def test_read_tagged_errors(tmp_path, obj, match):
    with pytest.raises(InvalidInput, match=match):
        read_tagged(write(tmp_path, "t.jsonl", json.dumps(obj) + "\n"))


# ---------------------------------------------------------------------------------------------- series
def test_read_series_skips_a_date_column_and_reads_target_and_exog(tmp_path):
    path = write(tmp_path, "s.csv", "month,sales,price,promo\n2020-01,10,1.5,0\n2020-02,12.5,1.25,1\n")
    values, exog, names = read_series(path, exog_columns=["price", "promo"])
    assert values.dtype == np.float64 and values.tolist() == [10.0, 12.5]
    assert exog.shape == (2, 2) and exog.tolist() == [[1.5, 0.0], [1.25, 1.0]]
    assert names == ["sales", "price", "promo"]
    values, exog, names = read_series(path, column="price")
    assert values.tolist() == [1.5, 1.25] and exog is None and names == ["price"]


def test_read_series_without_a_date_column_uses_the_first_column(tmp_path):
    values, _, names = read_series(write(tmp_path, "s.csv", "a,b\n1,2\n3,4\n"))
    assert names == ["a"] and values.tolist() == [1.0, 3.0]


@pytest.mark.parametrize(
    "content, kwargs, match",
    [
        ("month,y\n2020-01,1\n2020-02,\n", {}, r"row 3, column 'y': expected a finite number, got a missing"),
        ("month,y\n2020-01,1\n2020-02,abc\n", {}, r"row 3, column 'y': expected a finite number, got 'abc'"),
        ("month,y\n2020-01,nan\n", {}, r"row 2, column 'y'"),
        ("month,y\n2020-01,1,5\n", {}, r"row 2: expected 2 fields, got 3"),
        ("month,y\n2020-01,1\n", {"column": "z"}, r"column 'z': expected one of the numeric columns \['y'\]"),
        ("month,y\n2020-01,1\n", {"exog_columns": ["y"]}, "expected a numeric column besides"),
        ("month,y\n", {}, "expected a header row and at least one data row"),
        ("y,y\n1,2\n", {}, "unique, non-empty column names"),
    ],
)
def test_read_series_errors_name_row_and_column(tmp_path, content, kwargs, match):
    with pytest.raises(InvalidInput, match=match):
        read_series(write(tmp_path, "s.csv", content), **kwargs)


@pytest.mark.skipif(not (SHARED / "airline_passengers.csv").exists(), reason="shared data set not present")
def test_reads_the_shared_airline_series():
    values, exog, names = read_series(SHARED / "airline_passengers.csv")
    assert values.shape == (144,) and values[0] == 112 and exog is None and names == ["passengers"]


# ---------------------------------------------------------------------------------------------- splits
def test_split_is_deterministic_disjoint_and_order_preserving():
    items = list(range(100))
    train, val = split(items, 0.2, seed=3)
    assert (train, val) == split(items, 0.2, seed=3)
    assert split(items, 0.2, seed=4) != (train, val)
    assert len(val) == 20 and sorted(train + val) == items
    assert train == sorted(train) and val == sorted(val)


def test_split_keeps_at_least_one_validation_item_and_allows_none():
    assert len(split(["a", "b", "c"], 0.1)[1]) == 1
    assert split(["a", "b"], 0.0) == (["a", "b"], [])
    assert split(["only"], 0.1) == (["only"], [])


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5, "0.1", True, None])
def test_split_refuses_fractions_outside_zero_one(fraction):
    with pytest.raises(InvalidInput, match=r"val_fraction: expected a number in \[0, 1\)"):
        split([1, 2, 3], fraction)


def test_split_refuses_to_leave_training_empty_and_non_sequences():
    with pytest.raises(InvalidInput, match="leaves no training data"):
        split([], 0.1)
    with pytest.raises(InvalidInput, match="items: expected a sequence"):
        split({1, 2, 3}, 0.1)


def test_split_text_cuts_a_contiguous_tail():
    text = "abcdefghij" * 10
    train, val = split_text(text, 0.25)
    assert train + val == text and len(val) == 25
    assert split_text("ab", 0.0) == ("ab", "")
    with pytest.raises(InvalidInput, match="leaves no training data"):
        split_text("", 0.5)


# ---------------------------------------------------------------------------------------------- corpus
def test_default_corpus_is_deterministic_printable_ascii_prose():
    from rnn_engine.corpus import default_corpus

    text = default_corpus()
    assert text == default_corpus() and len(text) > 100_000
    assert set(text) <= {chr(c) for c in range(32, 127)} | {"\n"}
    assert "\n\n\n" not in text and not any(line.endswith(" ") for line in text.split("\n"))
    assert "statement" in text and len(set(text)) > 60
    assert default_corpus(max_chars=1000) == text[:1000]
    with pytest.raises(InvalidInput, match="max_chars"):
        default_corpus(max_chars=0)
