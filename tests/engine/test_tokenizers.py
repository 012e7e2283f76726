"""Tokenizers: special ids, round trips, unknowns, vocabulary limits, persistence and streaming decode."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnn_engine.errors import InvalidInput
from rnn_engine.tokenizers import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIALS,
    UNK_ID,
    ByteTokenizer,
    CharTokenizer,
    StreamDecoder,
    Tokenizer,
    WordTokenizer,
)

TEXT = "The quick brown fox, it said, jumps over (the) lazy dog! Don't panic; 42% of it is fine.\nNew line."


def all_kinds() -> list[Tokenizer]:
    return [CharTokenizer.fit([TEXT]), WordTokenizer.fit([TEXT]), ByteTokenizer()]


@pytest.mark.parametrize("tok", all_kinds(), ids=lambda t: t.kind)
def test_every_kind_reserves_the_same_four_special_ids(tok):
    assert tok.tokens[:4] == list(SPECIALS)
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)
    ids = tok.encode("fox", add_bos=True, add_eos=True)
    assert ids[0] == BOS_ID and ids[-1] == EOS_ID
    assert tok.decode(ids) == "fox"
    assert tok.decode(ids, skip_special=False).startswith("<bos>")


def test_char_round_trip_on_seen_characters_and_unknown_otherwise():
    tok = CharTokenizer.fit([TEXT])
    assert tok.decode(tok.encode(TEXT)) == TEXT
    assert tok.vocab_size == 4 + len(set(TEXT))
    ids = tok.encode("fox#")
    assert ids[-1] == UNK_ID and ids[:3] == tok.encode("fox")


def test_byte_round_trip_is_exact_for_any_unicode_text():
    tok = ByteTokenizer()
    assert tok.vocab_size == 260
    for text in ["", "héllo wörld", "日本語 😀 \x00\t\n", TEXT]:
        ids = tok.encode(text)
        assert UNK_ID not in ids and len(ids) == len(text.encode("utf-8"))
        assert tok.decode(ids) == text


def test_byte_decode_replaces_invalid_utf8_like_bytes_decode():
    tok = ByteTokenizer()
    rng = np.random.default_rng(0)
    for _ in range(50):
        raw = bytes(rng.integers(0, 256, size=int(rng.integers(1, 20))).tolist())
        assert tok.decode([b + 4 for b in raw]) == raw.decode("utf-8", errors="replace")


def test_word_tokens_split_punctuation_and_keep_contractions():
    tok = WordTokenizer.fit([TEXT])
    pieces = [tok.tokens[i] for i in tok.encode("Don't panic, fox!")]
    assert pieces == ["Don't", "panic", ",", "fox", "!"]


def test_word_decode_spacing_round_trips_up_to_whitespace():
    tok = WordTokenizer.fit([TEXT])
    text = tok.decode(tok.encode(TEXT))
    assert text.startswith("The quick brown fox, it said, jumps over (the) lazy dog! Don't panic; 42% of it")
    assert tok.encode(text) == tok.encode(TEXT)
    assert " ".join(text.split()) == text  # no double spaces, no newlines


def test_word_vocabulary_cap_keeps_most_frequent_and_maps_rest_to_unk():
    texts = ["a a a a b b b c c d"]
    tok = WordTokenizer.fit(texts, max_vocab=6)
    assert tok.tokens[4:] == ["a", "b"]
    assert tok.encode("a b c d") == [4, 5, UNK_ID, UNK_ID]
    assert tok.decode(tok.encode("a c")) == "a <unk>"
    assert WordTokenizer.fit(texts, min_freq=2).tokens[4:] == ["a", "b", "c"]


def test_word_lowercase_option_folds_case_on_fit_and_encode():
    tok = WordTokenizer.fit(["The the THE cat"], lowercase=True)
    assert tok.tokens[4:] == ["the", "cat"]
    assert tok.encode("THE Cat") == [4, 5]
    assert Tokenizer.from_dict(tok.to_dict()).encode("THE Cat") == [4, 5]


@pytest.mark.parametrize("cls", [CharTokenizer, WordTokenizer])
@pytest.mark.parametrize("texts", [[""], ["aaaa"], ["xx", "xx"], []])
def test_fitting_fewer_than_two_symbols_is_refused(cls, texts):
    with pytest.raises(InvalidInput, match="needs at least 2 distinct symbols"):
        cls.fit(texts)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"max_vocab": 5}, "max_vocab"), ({"max_vocab": "10"}, "max_vocab"), ({"min_freq": 0}, "min_freq")],
)
def test_fit_validates_its_options(kwargs, match):
    with pytest.raises(InvalidInput, match=match):
        CharTokenizer.fit(["abc"], **kwargs)


def test_fit_rejects_non_string_texts_and_encode_non_strings():
    with pytest.raises(InvalidInput, match=r"texts\[1\]"):
        CharTokenizer.fit(["ab", 3])
    with pytest.raises(InvalidInput, match="text: expected a str"):
        ByteTokenizer().encode(b"abc")


@pytest.mark.parametrize("tok", all_kinds(), ids=lambda t: t.kind)
def test_to_dict_is_json_and_from_dict_restores_the_same_tokenizer(tok):
    d = json.loads(json.dumps(tok.to_dict()))
    back = Tokenizer.from_dict(d)
    assert type(back) is type(tok) and back.tokens == tok.tokens
    assert back.encode(TEXT) == tok.encode(TEXT)


@pytest.mark.parametrize(
    "d, match",
    [
        ({"kind": "bpe", "tokens": []}, "kind"),
        ({"kind": "char"}, "tokens"),
        ({"kind": "char", "tokens": ["a", "b"]}, "start with"),
        ({"kind": "char", "tokens": [*SPECIALS, "a", "a"]}, "unique"),
        ({"kind": "char", "tokens": [*SPECIALS, "ab"]}, "single characters"),
        ({"kind": "byte", "tokens": [*SPECIALS, "a"]}, "256"),
        ({"kind": "word", "tokens": [*SPECIALS, "two words"]}, "words or single punctuation"),
        ({"kind": "word", "tokens": [*SPECIALS, "a"], "lowercase": "yes"}, "lowercase"),
        ("char", "expected a dict"),
    ],
)
def test_from_dict_rejects_malformed_data(d, match):
    with pytest.raises(InvalidInput, match=match):
        Tokenizer.from_dict(d)


@pytest.mark.parametrize("bad", [-1, 10_000, 1.5, "3", True])
def test_decode_rejects_out_of_range_or_non_integer_ids(bad):
    tok = CharTokenizer.fit([TEXT])
    with pytest.raises(InvalidInput, match="token id"):
        tok.decode([4, bad])


@pytest.mark.parametrize("tok", all_kinds(), ids=lambda t: t.kind)
def test_streaming_decode_equals_decoding_the_whole(tok):
    rng = np.random.default_rng(1)
    for _ in range(30):
        ids = rng.integers(0, tok.vocab_size, size=25).tolist()
        for skip in (True, False):
            stream = StreamDecoder(tok, skip_special=skip)
            streamed = "".join(stream.push(i) for i in ids) + stream.flush()
            assert streamed == tok.decode(ids, skip_special=skip)


def test_byte_stream_holds_back_a_partial_character_until_complete():
    tok = ByteTokenizer()
    stream = StreamDecoder(tok)
    parts = [stream.push(i) for i in tok.encode("a€b")]  # € is 3 bytes
    assert parts == ["a", "", "", "€", "b"]
    assert stream.push(tok.encode("€")[0]) == "" and stream.flush() == "\ufffd"
    assert tok.token_text(tok.encode("€")[0]) == "\ufffd" and tok.token_text(tok.encode("a")[0]) == "a"


def test_word_stream_after_a_prompt_spaces_the_first_generated_word():
    tok = WordTokenizer.fit([TEXT])
    prompt = tok.encode("the lazy")
    stream = StreamDecoder(tok, previous=prompt[-1])
    assert "".join(stream.push(i) for i in tok.encode("dog!")) == " dog!"
    assert tok.token_text(tok.encode("dog")[0]) == "dog"
    assert tok.token_text(tok.encode(",")[0], previous=prompt[-1]) == ","


# ---------------------------------------------------------------------------------------------- properties

@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40))
def test_property_byte_round_trip_and_streaming(text):
    tok = ByteTokenizer()
    ids = tok.encode(text, add_bos=True, add_eos=True)
    assert tok.decode(ids) == text
    stream = StreamDecoder(tok)
    assert "".join(stream.push(i) for i in ids) + stream.flush() == text


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from(sorted(set(TEXT))), max_size=60))
def test_property_char_round_trip_on_seen_characters(text):
    tok = CharTokenizer.fit([TEXT])
    assert tok.decode(tok.encode(text)) == text


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(WordTokenizer.fit([TEXT]).tokens[4:]), max_size=15))
def test_property_word_decode_then_encode_gives_the_same_ids(pieces):
    tok = WordTokenizer.fit([TEXT])
    ids = [tok.tokens.index(p) for p in pieces]
    assert tok.encode(tok.decode(ids)) == ids
