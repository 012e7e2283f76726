"""The field of an INVALID_ARGUMENT comes from the engine exception, not from its message text."""

import grpc
import pytest

from rnn_engine.config import ModelConfig
from rnn_engine.errors import InvalidInput
from server.errors import classify, with_field_prefix


def test_the_field_travels_on_the_exception():
    with pytest.raises(InvalidInput) as info:
        ModelConfig(hidden_size=0).validate()
    assert info.value.field == "hidden_size"


def test_classify_uses_the_exception_field_even_when_the_message_does_not_start_with_it():
    err = classify(InvalidInput("the hidden size must be positive", field="hidden_size"))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.field == "hidden_size"


def test_with_field_prefix_renames_and_prefixes_the_exception_field():
    exc = InvalidInput("stop: expected strings", field="stop")
    err = with_field_prefix(exc, "", {"stop": "stop_sequences"})
    assert err.field == "stop_sequences" and err.message == "stop_sequences: expected strings"
    err = with_field_prefix(InvalidInput("lr: expected > 0", field="lr"), "training")
    assert err.field == "training.lr" and err.message == "training.lr: expected > 0"


def test_an_exception_without_a_field_is_reported_on_request_and_its_message_is_not_parsed():
    # every engine raise site sets `field` (tests/engine/test_error_fields.py); nothing reads the message text
    assert classify(InvalidInput("max_new_tokens: expected an int")).field == "request"
    assert classify(InvalidInput("something is wrong")).field == "request"


def test_scalar_checks_refuse_bools_as_ints():
    from rnn_engine.validate import check_positive_int, is_int, is_number

    assert is_int(3) and not is_int(True) and not is_int(3.0)
    assert is_number(2.5) and not is_number(False)
    with pytest.raises(InvalidInput) as info:
        check_positive_int("num_layers", True)
    assert info.value.field == "num_layers"
