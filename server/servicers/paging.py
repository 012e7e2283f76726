"""Offset paging shared by the List methods: page_size (0: 100, max 1000) and an opaque numeric page_token."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from ..errors import invalid

T = TypeVar("T")
DEFAULT_PAGE, MAX_PAGE = 100, 1000
MAX_TOKEN_DIGITS = 18


def page(items: Sequence[T], page_size: int, page_token: str) -> tuple[list[T], str]:
    """One page of `items` and the token of the next page ("" at the end)."""
    if page_size < 0 or page_size > MAX_PAGE:
        raise invalid("page_size", f"expected 0..{MAX_PAGE}, got {page_size}")
    size = page_size or DEFAULT_PAGE
    # digits only, and few: int() refuses over 4300 digits, and no offset needs more than 18
    well_formed = len(page_token) <= MAX_TOKEN_DIGITS and page_token.isascii() and page_token.isdigit()
    if page_token and not (well_formed and int(page_token) <= len(items)):
        raise invalid("page_token", f"expected a token from a previous response, got {page_token!r:.40}")
    start = int(page_token or 0)
    end = start + size
    return list(items[start:end]), (str(end) if end < len(items) else "")
