"""Character, word and byte tokenizers sharing four special tokens, plus an incremental `StreamDecoder`.

Every tokenizer reserves ids 0..3 for `<pad>`, `<unk>`, `<bos>`, `<eos>`; real symbols follow.

Decoding and streaming are the same code: `decode(ids)` feeds the ids through a `StreamDecoder`, so the text
streamed token by token always equals the text decoded at once.

- char: one id per character seen in training; unseen characters encode to `<unk>`.
- word: `\\w+(?:'\\w+)*` runs and single punctuation marks; whitespace (newlines too) is not kept, and decode
  re-joins with a space between tokens except before closing punctuation (`.,;:!?)]}%`) and after opening
  brackets (`([{`), so `decode(encode(t))` re-encodes to the same ids ("up to whitespace normalisation").
- byte: the 256 UTF-8 byte values (ids 4..259), never unknown; decode uses errors="replace".

Streaming bytes: a multi-byte character spread over several ids is held back by `StreamDecoder.push` until it
is complete (an incremental UTF-8 decoder); `flush()` releases any incomplete tail as U+FFFD.
`token_text(id)` on its own cannot see neighbours, so for a lone non-ASCII byte it returns U+FFFD:
use `StreamDecoder` to stream.
Rendering of specials with `skip_special=True`: `<pad>`, `<bos>`, `<eos>` vanish; `<unk>` becomes U+FFFD for
char/byte and "<unk>" for word tokenizers. With `skip_special=False` every special renders as its name.
"""

from __future__ import annotations

import codecs
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from ..errors import InvalidInput
from ..validate import is_int

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
N_SPECIAL = len(SPECIALS)
REPLACEMENT = "\ufffd"

WORD_PATTERN = re.compile(r"\w+(?:['\u2019]\w+)*|[^\w\s]")
ATTACH_LEFT = frozenset(".,;:!?)]}%")  # no space before these
ATTACH_RIGHT = frozenset("([{")  # no space after these


class Tokenizer:
    """Maps text to ids and back. Subclasses set `kind` and fill `tokens` (id order, specials first)."""

    kind: ClassVar[str] = ""

    def __init__(self, tokens: Sequence[str]) -> None:
        tokens = list(tokens)
        if tuple(tokens[:N_SPECIAL]) != SPECIALS:
            raise InvalidInput(
                f"tokens: expected to start with {list(SPECIALS)}, got {tokens[:N_SPECIAL]}",
                field="tokens",
            )
        if not all(isinstance(t, str) and t for t in tokens):
            raise InvalidInput("tokens: expected non-empty strings", field="tokens")
        if len(set(tokens)) != len(tokens):
            dupes = sorted(t for t, c in Counter(tokens).items() if c > 1)[:5]
            raise InvalidInput(f"tokens: expected unique tokens, got duplicates {dupes}", field="tokens")
        self.tokens: list[str] = tokens
        self._index: dict[str, int] = {t: i for i, t in enumerate(tokens)}

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"

    # ------------------------------------------------------------------------------------------ encode
    def _pieces(self, text: str) -> list[str]:
        raise NotImplementedError

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Text -> list of ids, optionally framed by `<bos>` ... `<eos>`."""
        if not isinstance(text, str):
            raise InvalidInput(f"text: expected a str, got {type(text).__name__}", field="text")
        get = self._index.get
        ids = [get(p, UNK_ID) for p in self._pieces(text)]
        return ([BOS_ID] if add_bos else []) + ids + ([EOS_ID] if add_eos else [])

    # ------------------------------------------------------------------------------------------ decode
    def check_id(self, token_id: Any, name: str = "id") -> int:
        """Return `token_id` as an int in [0, vocab_size) or raise InvalidInput naming it."""
        if isinstance(token_id, bool) or not hasattr(token_id, "__index__"):
            raise InvalidInput(f"{name}: expected an integer token id, got {token_id!r}", field=name)
        token_id = int(token_id)
        if not 0 <= token_id < self.vocab_size:
            raise InvalidInput(
                f"{name}: expected a token id in [0, {self.vocab_size}), got {token_id}",
                field=name,
            )
        return token_id

    def token_text(self, token_id: int, previous: int | None = None) -> str:
        """The text `token_id` contributes when it follows `previous` (None or a special: start of text).

        Only word tokenizers use `previous` (for spacing). Specials render as their names here.
        """
        token_id = self.check_id(token_id)
        return self._piece_text(token_id, previous)

    def _piece_text(self, token_id: int, previous: int | None) -> str:
        return self.tokens[token_id]

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """Ids -> text; identical to streaming the ids through a `StreamDecoder` and flushing."""
        stream = StreamDecoder(self, skip_special=skip_special)
        out = [stream.push(i) for i in ids]
        out.append(stream.flush())
        return "".join(out)

    # ------------------------------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        return {"kind": self.kind, "tokens": list(self.tokens)}

    @staticmethod
    def from_dict(d: dict) -> Tokenizer:
        """Rebuild a tokenizer saved by `to_dict`, dispatching on d["kind"]; validates the token list."""
        if not isinstance(d, dict):
            raise InvalidInput(f"tokenizer: expected a dict, got {type(d).__name__}", field="tokenizer")
        kinds = {cls.kind: cls for cls in (CharTokenizer, WordTokenizer, ByteTokenizer)}
        kind = d.get("kind")
        if kind not in kinds:
            raise InvalidInput(
                f"tokenizer.kind: expected one of {sorted(kinds)}, got {kind!r}",
                field="tokenizer.kind",
            )
        tokens = d.get("tokens")
        if not isinstance(tokens, list):
            raise InvalidInput(
                f"tokenizer.tokens: expected a list of str, got {type(tokens).__name__}",
                field="tokenizer.tokens",
            )
        return kinds[kind]._from_tokens(tokens, d)

    @classmethod
    def _from_tokens(cls, tokens: list, d: dict) -> Tokenizer:
        return cls(tokens)

    @classmethod
    def fit(cls, texts: Iterable[str], max_vocab: int | None = None, min_freq: int = 1) -> Tokenizer:
        """Build the vocabulary from `texts` (a str or an iterable of str).

        Args:
            max_vocab: cap on vocab_size *including* the 4 specials (keeps the most frequent symbols).
            min_freq: drop symbols seen fewer times.
        Raises InvalidInput when fewer than 2 distinct symbols remain (nothing to learn).
        """
        if isinstance(texts, str):
            texts = [texts]
        if max_vocab is not None and (not is_int(max_vocab)
                                      or max_vocab < N_SPECIAL + 2):
            raise InvalidInput(
                f"max_vocab: expected None or an int >= {N_SPECIAL + 2}, got {max_vocab!r}",
                field="max_vocab",
            )
        if not is_int(min_freq) or min_freq < 1:
            raise InvalidInput(f"min_freq: expected an int >= 1, got {min_freq!r}", field="min_freq")
        counts: Counter[str] = Counter()
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidInput(
                    f"texts[{i}]: expected a str, got {type(text).__name__}",
                    field=f"texts[{i}]",
                )
            counts.update(cls._fit_pieces(text))
        kept = [(s, c) for s, c in counts.items() if c >= min_freq and s not in SPECIALS]
        kept.sort(key=lambda sc: (-sc[1], sc[0]))
        if max_vocab is not None:
            kept = kept[: max_vocab - N_SPECIAL]
        if len(kept) < 2:
            raise InvalidInput(
                f"texts: a {cls.kind} tokenizer needs at least 2 distinct symbols to train on, "
                f"got {len(kept)} "
                f"(min_freq={min_freq}, {len(counts)} distinct before filtering)", field="texts"
            )
        return cls(list(SPECIALS) + cls._order([s for s, _ in kept]))

    @classmethod
    def _fit_pieces(cls, text: str) -> Iterable[str]:
        raise InvalidInput(f"tokenizer: a {cls.kind or 'base'} tokenizer cannot be fitted", field="tokenizer")

    @staticmethod
    def _order(symbols: list[str]) -> list[str]:
        return symbols


class CharTokenizer(Tokenizer):
    """One id per character seen in training (sorted by code point after the specials)."""

    kind = "char"

    def __init__(self, tokens: Sequence[str]) -> None:
        super().__init__(tokens)
        bad = [t for t in self.tokens[N_SPECIAL:] if len(t) != 1]
        if bad:
            raise InvalidInput(
                f"tokens: a char tokenizer expects single characters, got {bad[:5]}",
                field="tokens",
            )

    def _pieces(self, text: str) -> list[str]:
        return list(text)

    @classmethod
    def _fit_pieces(cls, text: str) -> Iterable[str]:
        return text

    @staticmethod
    def _order(symbols: list[str]) -> list[str]:
        return sorted(symbols)


class WordTokenizer(Tokenizer):
    """Words and punctuation marks (most frequent first); optional lower-casing; unseen words -> `<unk>`."""

    kind = "word"

    def __init__(self, tokens: Sequence[str], lowercase: bool = False) -> None:
        super().__init__(tokens)
        bad = [t for t in self.tokens[N_SPECIAL:] if not WORD_PATTERN.fullmatch(t)]
        if bad:
            raise InvalidInput(
                f"tokens: a word tokenizer expects words or single punctuation marks, got {bad[:5]}",
                field="tokens"
            )
        if not isinstance(lowercase, bool):
            raise InvalidInput(f"lowercase: expected a bool, got {lowercase!r}", field="lowercase")
        self.lowercase = lowercase

    def _pieces(self, text: str) -> list[str]:
        return WORD_PATTERN.findall(text.lower() if self.lowercase else text)

    @classmethod
    def _fit_pieces(cls, text: str) -> Iterable[str]:
        return WORD_PATTERN.findall(text)

    @classmethod
    def fit(cls, texts: Iterable[str], max_vocab: int | None = None, min_freq: int = 1,
            lowercase: bool = False) -> WordTokenizer:
        if lowercase:
            texts = [texts.lower()] if isinstance(texts, str) else (t.lower() if isinstance(t, str) else t
                                                                     for t in texts)
        tok = super().fit(texts, max_vocab=max_vocab, min_freq=min_freq)
        return cls(tok.tokens, lowercase=lowercase)

    def _piece_text(self, token_id: int, previous: int | None) -> str:
        text = self.tokens[token_id]
        at_start = previous is None or (previous < N_SPECIAL and previous != UNK_ID)
        if at_start or token_id in (PAD_ID, BOS_ID, EOS_ID):
            return text
        if text in ATTACH_LEFT or self.tokens[previous] in ATTACH_RIGHT:
            return text
        return " " + text

    def to_dict(self) -> dict:
        return {**super().to_dict(), "lowercase": self.lowercase}

    @classmethod
    def _from_tokens(cls, tokens: list, d: dict) -> Tokenizer:
        return cls(tokens, lowercase=d.get("lowercase", False))


class ByteTokenizer(Tokenizer):
    """UTF-8 bytes: id = byte + 4. Needs no fitting and never produces `<unk>`."""

    kind = "byte"

    def __init__(self, tokens: Sequence[str] | None = None) -> None:
        expected = list(SPECIALS) + [self.byte_name(b) for b in range(256)]
        if tokens is not None and list(tokens) != expected:
            raise InvalidInput(
                "tokens: a byte tokenizer expects the 4 specials then the 256 byte names",
                field="tokens",
            )
        super().__init__(expected)

    @staticmethod
    def byte_name(b: int) -> str:
        return chr(b) if 0x21 <= b <= 0x7E else f"<0x{b:02X}>"

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        if not isinstance(text, str):
            raise InvalidInput(f"text: expected a str, got {type(text).__name__}", field="text")
        ids = [b + N_SPECIAL for b in text.encode("utf-8")]
        return ([BOS_ID] if add_bos else []) + ids + ([EOS_ID] if add_eos else [])

    def _piece_text(self, token_id: int, previous: int | None) -> str:
        if token_id < N_SPECIAL:
            return self.tokens[token_id]
        return bytes([token_id - N_SPECIAL]).decode("utf-8", errors="replace")

    @classmethod
    def fit(cls, texts: Iterable[str] = (), max_vocab: int | None = None, min_freq: int = 1) -> ByteTokenizer:
        """Bytes need no vocabulary: returns a ByteTokenizer regardless of `texts`."""
        return cls()


class StreamDecoder:
    """Turns ids into text one at a time; `push(id)` returns the text that became final with that id.

    Args:
        tokenizer: any Tokenizer.
        skip_special: drop `<pad>`/`<bos>`/`<eos>` (and render `<unk>` as described in the module docstring).
        previous: the last id already shown (e.g. the prompt's last id), so a word tokenizer spaces the first
            generated word correctly; None means start of text.
    """

    def __init__(self, tokenizer: Tokenizer, skip_special: bool = True, previous: int | None = None) -> None:
        if not isinstance(tokenizer, Tokenizer):
            raise InvalidInput(
                f"tokenizer: expected a Tokenizer, got {type(tokenizer).__name__}",
                field="tokenizer",
            )
        self.tokenizer = tokenizer
        self.skip_special = skip_special
        self.previous = None if previous is None else tokenizer.check_id(previous, "previous")
        self._bytes = None
        if tokenizer.kind == "byte":
            self._bytes = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        tok = self.tokenizer
        token_id = tok.check_id(token_id, "token id")
        if token_id >= N_SPECIAL and self._bytes is not None:
            return self._bytes.decode(bytes([token_id - N_SPECIAL]))
        if token_id < N_SPECIAL and token_id != UNK_ID and self.skip_special:
            return ""  # invisible, and leaves the spacing context unchanged
        pending = self.flush()
        if token_id == UNK_ID and self.skip_special and tok.kind != "word":
            text = REPLACEMENT
        else:
            text = tok._piece_text(token_id, self.previous)
        self.previous = token_id
        return pending + text

    def flush(self) -> str:
        """Release any held-back incomplete UTF-8 bytes (as U+FFFD); call at the end of a stream."""
        if self._bytes is None:
            return ""
        text = self._bytes.decode(b"", final=True)
        self._bytes.reset()
        return text
