"""Byte-level mutations of valid serialized requests, and one valid seed request (or stream) per RPC.

Each mutation takes the bytes of a well-formed message and returns bytes a protobuf decoder may refuse:
bit flips, truncation, a 10-byte (over-long) varint, a field re-tagged with another wire type, nesting
deeper than the decoder allows (google.protobuf.Struct inside Value inside Struct ...), invalid UTF-8 in a
string field, a spliced copy, random bytes. Randomness comes from a `random.Random` given by the caller.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf import struct_pb2

from rnn.v1 import common_pb2 as pb
from rnn.v1 import inference_service_pb2 as ipb
from rnn.v1 import model_service_pb2 as mpb
from rnn.v1 import training_service_pb2 as tpb


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def tag(field: int, wire_type: int) -> bytes:
    return varint(field << 3 | wire_type)


def length_delimited(field: int, payload: bytes) -> bytes:
    return tag(field, 2) + varint(len(payload)) + payload


def deep_struct(depth: int) -> bytes:
    """A google.protobuf.Struct nested `depth` levels (Struct.fields["a"].struct_value ...)."""
    inner = b""
    for _ in range(depth):
        value = length_delimited(5, inner)  # Value.struct_value = 5
        entry = length_delimited(1, b"a") + length_delimited(2, value)  # map entry: key = 1, value = 2
        inner = length_delimited(1, entry)  # Struct.fields = 1
    return inner


def flip_bits(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return b"\xff"
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data))] if len(data) > 1 else b"\x0a"


def huge_varint(data: bytes, rng: random.Random) -> bytes:
    """A varint field of 10+ bytes (over-long, or beyond 64 bits) at a random field number."""
    body = b"\xff" * rng.randint(9, 12) + b"\x01"
    at = rng.randrange(len(data) + 1)
    return data[:at] + tag(rng.randint(1, 16), 0) + body + data[at:]


def wrong_wire_type(data: bytes, rng: random.Random) -> bytes:
    """The first byte (a tag) keeps its field number with another wire type; or a known field re-tagged."""
    if not data:
        return tag(1, 5) + b"\x00\x00"
    out = bytearray(data)
    out[0] = (out[0] & ~0x07) | rng.choice([0, 1, 2, 3, 4, 5, 6, 7])
    return bytes(out)


def deep_nesting(data: bytes, rng: random.Random) -> bytes:
    """A Struct nested past the decoder's recursion limit where a Struct lives (TrainRequest.spec.extra),
    or the message wrapped in itself as unknown length-delimited fields."""
    depth = rng.choice([101, 150, 400])
    if rng.random() < 0.5:
        return data + length_delimited(3, length_delimited(15, deep_struct(depth)))  # spec (3) .extra (15)
    wrapped = data
    for _ in range(depth):
        wrapped = length_delimited(rng.randint(1, 15), wrapped)
    return wrapped


def invalid_utf8(data: bytes, rng: random.Random) -> bytes:
    """A string field (field 1 of every request but UploadDataset's) holding bytes that are not UTF-8."""
    bad = rng.choice([b"\xc3\x28", b"\xff\xfe", b"\xed\xa0\x80", b"\xe2\x82", b"\x80"])
    return data + length_delimited(rng.choice([1, 2]), bad)


def splice(data: bytes, rng: random.Random) -> bytes:
    if len(data) < 2:
        return data * 3
    a, b = sorted(rng.sample(range(len(data)), 2))
    return data[:b] + data[a:b] + data[b:]


def random_bytes(data: bytes, rng: random.Random) -> bytes:
    return bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))


MUTATIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "flip_bits": flip_bits,
    "truncate": truncate,
    "huge_varint": huge_varint,
    "wrong_wire_type": wrong_wire_type,
    "deep_nesting": deep_nesting,
    "invalid_utf8": invalid_utf8,
    "splice": splice,
    "random_bytes": random_bytes,
}


@dataclass(frozen=True)
class Seed:
    """A valid request (a list of messages for a request stream) of one method, and its streaming shape."""

    method: str
    messages: tuple[bytes, ...]
    request_streaming: bool = False
    response_streaming: bool = False


def _s(*messages) -> tuple[bytes, ...]:
    return tuple(m.SerializeToString() for m in messages)


def seeds() -> list[Seed]:
    """One valid call of every rnn.v1 RPC against the tiny models of tests/security/helpers.py."""
    extra = struct_pb2.Struct()
    extra.update({"window": 6})
    train = tpb.TrainRequest(
        model="fuzzed", task=pb.TASK_LANGUAGE_MODEL, overwrite=True,
        spec=pb.ModelSpec(cell=pb.CELL_TYPE_GRU, hidden_size=4, embedding_dim=4, extra=extra),
        training=pb.TrainingSettings(max_steps=1, batch_size=2, seq_len=4, seed=1),
        dataset=tpb.DatasetSource(text="the cat sat on the mat " * 4))
    train.dataset.options.update({"fmt": "auto"})
    return [
        Seed("/rnn.v1.InferenceService/Predict", _s(ipb.PredictRequest(
            model="lm", inputs=[pb.SequenceInput(text="the cat")], top_k=2))),
        Seed("/rnn.v1.InferenceService/Predict", _s(ipb.PredictRequest(
            model="fc", inputs=[pb.SequenceInput(values=pb.FloatSequence(data=[0.1] * 8))]))),
        Seed("/rnn.v1.InferenceService/PredictStream", _s(
            ipb.PredictStreamRequest(model="lm", sequence_id="a", start=True,
                                     chunk=pb.SequenceInput(text="the")),
            ipb.PredictStreamRequest(sequence_id="a", end=True, chunk=pb.SequenceInput(text=" cat"))),
            request_streaming=True, response_streaming=True),
        Seed("/rnn.v1.InferenceService/StreamGenerate", _s(ipb.StreamGenerateRequest(
            model="lm", prompt="the", max_new_tokens=3, seed=1, temperature=0.5, stop_sequences=["."])),
            response_streaming=True),
        Seed("/rnn.v1.ModelService/ListModels", _s(mpb.ListModelsRequest(page_size=2, page_token="1"))),
        Seed("/rnn.v1.ModelService/GetModel", _s(mpb.GetModelRequest(model="clf"))),
        Seed("/rnn.v1.ModelService/DeleteModel", _s(mpb.DeleteModelRequest(model="ghost"))),
        Seed("/rnn.v1.ModelService/ExportOnnx", _s(mpb.ExportOnnxRequest(model="lm")),
             response_streaming=True),
        Seed("/rnn.v1.TrainingService/Train", _s(train), response_streaming=True),
        Seed("/rnn.v1.TrainingService/WatchJob", _s(tpb.WatchJobRequest(job_id="job-000000000000")),
             response_streaming=True),
        Seed("/rnn.v1.TrainingService/GetJob", _s(tpb.GetJobRequest(job_id="job-000000000000"))),
        Seed("/rnn.v1.TrainingService/ListJobs", _s(tpb.ListJobsRequest(page_size=5, page_token="0"))),
        Seed("/rnn.v1.TrainingService/CancelJob", _s(tpb.CancelJobRequest(job_id="job-000000000000"))),
        Seed("/rnn.v1.TrainingService/UploadDataset", _s(
            tpb.UploadDatasetRequest(info=tpb.DatasetInfo(name="t", format=tpb.DATASET_FORMAT_TEXT)),
            tpb.UploadDatasetRequest(chunk=b"the cat sat")), request_streaming=True),
    ]


def mutate_call(seed: Seed, rng: random.Random) -> tuple[str, tuple[bytes, ...]]:
    """(mutation name, the call's messages with one of them mutated)."""
    name = rng.choice(list(MUTATIONS))
    messages = list(seed.messages)
    i = rng.randrange(len(messages))
    messages[i] = MUTATIONS[name](messages[i], rng)
    return name, tuple(messages)
