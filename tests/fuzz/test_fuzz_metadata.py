"""Hypothesis-generated call metadata (request ids, unknown keys, binary headers): calls still succeed and the
request id the server echoes is always a sane one."""

from __future__ import annotations

import re

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnn.v1 import common_pb2 as pb
from rnn.v1 import inference_service_pb2 as ipb
from tests.security.helpers import Stubs, save_tiny_models, start_server

SANE_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")
PRINTABLE = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=100)
KEYS = st.one_of(st.sampled_from(["x-request-id", "request-id", "x-forwarded-for", "user-agent-x"]),
                 st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=20))


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    root = tmp_path_factory.mktemp("meta")
    save_tiny_models(root, ("lm",))
    server, port = start_server(root)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield Stubs(channel)
    channel.close()
    server.drain(1)


@settings(max_examples=60, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(metadata=st.lists(st.tuples(KEYS, PRINTABLE), max_size=5),
       binary=st.lists(st.binary(max_size=40), max_size=2))
def test_fuzzed_metadata_never_breaks_a_call(stubs, metadata, binary):
    pairs = [(k.lower(), v) for k, v in metadata if not k.lower().startswith(("grpc-", ":"))
             and not k.lower().endswith("-bin") and k.lower() not in ("te", "content-type", "authorization")]
    pairs += [(f"fuzz{i}-bin", b) for i, b in enumerate(binary)]
    request = ipb.PredictRequest(model="lm", inputs=[pb.SequenceInput(text="the cat")])
    reply, call = stubs.inference.Predict.with_call(request, metadata=pairs, timeout=10)
    assert reply.outputs[0].length == 7
    echoed = dict(call.initial_metadata()).get("request-id", "")
    assert SANE_ID.fullmatch(echoed), echoed
    given_ids = [v for k, v in pairs if k in ("x-request-id", "request-id")]
    if given_ids and SANE_ID.fullmatch(given_ids[0]) and len(given_ids) == 1:
        assert echoed == given_ids[0]
