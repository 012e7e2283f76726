"""The default training corpus: English prose that every Python installation ships (pydoc topic help).

`pydoc_data.topics.topics` is a dict of ~80 help pages (the language reference sections behind `help("if")`).
Joined in sorted key order and normalised to printable ASCII plus newlines, it makes a deterministic corpus of
about 0.46 M characters (464,977 after normalisation on CPython 3.11.7; the text follows the Python version)
with no download, so demos and tests can train a character model anywhere.
"""

from __future__ import annotations

import functools
import re

from ..validate import check_positive_int

# typographic characters the help pages use, spelled in ASCII; anything else outside ASCII is dropped
ASCII_SPELLING = {
    "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2026": "...",
    "\u2013": "-", "\u2014": "--", "\u00a0": " ", "\t": "    ",
}
_TRANSLATION = str.maketrans(ASCII_SPELLING)
_NOT_KEPT = re.compile(r"[^\x20-\x7e\n]")
_TRAILING_SPACE = re.compile(r"[ ]+$", re.MULTILINE)
_BLANK_RUNS = re.compile(r"\n{3,}")


def normalise(text: str) -> str:
    """Printable ASCII and newlines only; no trailing spaces; at most one blank line in a row."""
    text = text.replace("\r\n", "\n").translate(_TRANSLATION)
    text = _NOT_KEPT.sub("", text)
    text = _TRAILING_SPACE.sub("", text)
    return _BLANK_RUNS.sub("\n\n", text).strip("\n") + "\n"


@functools.lru_cache(maxsize=1)
def _full_corpus() -> str:
    from pydoc_data.topics import topics

    return normalise("\n\n".join(topics[key] for key in sorted(topics)))


def default_corpus(max_chars: int | None = None) -> str:
    """The normalised pydoc topics text, or its first `max_chars` characters."""
    text = _full_corpus()
    if max_chars is None:
        return text
    return text[: check_positive_int("max_chars", max_chars)]
