"""Contract tests: what the .proto comments promise, checked on every task the server trains."""

from __future__ import annotations

import pytest

from rnn.v1 import common_pb2 as pb
from rnn.v1 import inference_service_pb2 as ipb

# name -> (inputs, the step count of each input as the proto defines it: tokens or vectors, no <bos>)
LENGTH_CASES = {
    "lm": ([pb.SequenceInput(text="the cat"), pb.SequenceInput(token_ids=pb.TokenIds(ids=[5, 6, 7]))], [7, 3]),
    "clf": ([pb.SequenceInput(text="cat"), pb.SequenceInput(text="mug owl")], [3, 7]),
    "tagger": ([pb.SequenceInput(text="the cat sat"), pb.SequenceInput(text="a dog")], [3, 2]),
    "fc": (
        [pb.SequenceInput(values=pb.FloatSequence(data=[0.1 * t for t in range(n)])) for n in (7, 11)],
        [7, 11],
    ),
    "rev": ([pb.SequenceInput(text="abc"), pb.SequenceInput(text="ab")], [3, 2]),
    "namer": ([pb.SequenceInput(text="F")], [0]),
}


@pytest.mark.parametrize("name", sorted(LENGTH_CASES))
def test_predict_length_is_the_number_of_input_steps_for_every_task(stubs, trained, name):
    inputs, lengths = LENGTH_CASES[name]
    reply = stubs.inference.Predict(ipb.PredictRequest(model=name, inputs=inputs), timeout=60)
    assert [o.length for o in reply.outputs] == lengths


@pytest.mark.parametrize("name", ["lm", "clf", "tagger", "fc"])
def test_predict_stream_length_is_the_chunks_step_count(stubs, trained, name):
    inputs, lengths = LENGTH_CASES[name]

    def requests():
        for i, chunk in enumerate(inputs):
            yield ipb.PredictStreamRequest(model=name, sequence_id="s", start=i == 0, chunk=chunk)

    replies = list(stubs.inference.PredictStream(requests(), timeout=30))
    assert [r.output.length for r in replies] == lengths
    assert replies[-1].steps_seen == sum(lengths)
