"""Byte-mutated requests sent with identity serializers to every RPC: never UNKNOWN or INTERNAL.

The bytes on the wire are whatever the mutation made (tests/fuzz/mutations.py), so the server's decoding is
under test, not only its validation. Every call must end with a status a client can act on; undecodable
bytes are INVALID_ARGUMENT without internal class names. Normal mode: NORMAL_CALLS calls (in `make test`);
long mode (`pytest -m fuzz_long tests/fuzz`): RNN_FUZZ_BYTES_CALLS calls (default 10,000) from seed
RNN_FUZZ_BYTES_SEED (default 1919).
"""

from __future__ import annotations

import collections
import os
import random
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rnn.v1 import training_service_pb2 as tpb
from tests.security.helpers import Stubs, save_tiny_models, start_server

from .mutations import Seed, mutate_call, seeds
from .test_fuzz_rpcs import SERVER_LIMITS, _Unexpected

NORMAL_CALLS = 300
LONG_CALLS = int(os.environ.get("RNN_FUZZ_BYTES_CALLS", "10000"))
LONG_SEED = int(os.environ.get("RNN_FUZZ_BYTES_SEED", "1919"))
FAILED = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}


@pytest.fixture(scope="module")
def server_channel(tmp_path_factory):
    import logging

    root = tmp_path_factory.mktemp("fuzz-bytes")
    save_tiny_models(root)
    handler = _Unexpected()
    logging.getLogger("rnn").addHandler(handler)
    server, port = start_server(root, **SERVER_LIMITS)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield channel, handler, server
    stubs = Stubs(channel)
    for job in stubs.training.ListJobs(tpb.ListJobsRequest(), timeout=10).jobs:
        stubs.training.CancelJob(tpb.CancelJobRequest(job_id=job.job_id), timeout=10)
    channel.close()
    logging.getLogger("rnn").removeHandler(handler)
    server.drain(3)


def send_raw(channel: grpc.Channel, seed: Seed, messages: tuple[bytes, ...],
             timeout: float = 10) -> tuple[grpc.StatusCode, str]:
    """Send `messages` as they are (no serializer) and return the call's (code, details); a response
    stream is read for at most two messages, then cancelled (a Train would otherwise follow its job)."""
    kind = {(False, False): channel.unary_unary, (False, True): channel.unary_stream,
            (True, False): channel.stream_unary, (True, True): channel.stream_stream}
    call = kind[seed.request_streaming, seed.response_streaming](seed.method)  # identity serializers
    arg = iter(messages) if seed.request_streaming else messages[0]
    try:
        if not seed.response_streaming:
            call(arg, timeout=timeout)
            return grpc.StatusCode.OK, ""
        responses = call(arg, timeout=timeout)
        for n, _ in enumerate(responses):
            if n >= 1:
                responses.cancel()
                return grpc.StatusCode.OK, ""
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.CANCELLED and seed.response_streaming:
            return grpc.StatusCode.OK, ""  # cancelled by us after two responses
        return exc.code(), exc.details() or ""


def run_fuzz(channel, handler, n_calls: int, seed: int) -> collections.Counter:
    rng = random.Random(seed)
    table = seeds()
    counts: collections.Counter = collections.Counter()
    failures = []
    for _ in range(n_calls):
        s = rng.choice(table)
        mutation, messages = mutate_call(s, rng)
        code, details = send_raw(channel, s, messages)
        counts[code.name] += 1
        if code in FAILED or "<class" in details or "Traceback" in details:
            failures.append((s.method, mutation, messages[:2], code.name, details[:200]))
    assert not failures, f"{len(failures)} failed calls, first: {failures[:3]}"
    assert not handler.records, [r.getMessage() for r in handler.records[:3]]
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    return counts


def test_undecodable_bytes_are_invalid_argument_on_every_rpc_kind(server_channel):
    channel, _, _ = server_channel
    for s in seeds():
        field_1_is_text = not s.method.endswith(("/ListModels", "/ListJobs", "/UploadDataset"))
        # corrupt, truncated, invalid UTF-8 (in field 1 where it is a string; elsewhere an unknown field)
        for bad in (b"\xff", b"\x0a\x05ab", *([b"\x0a\x02\xc3\x28"] if field_1_is_text else [])):
            messages = (bad, *s.messages[1:]) if s.request_streaming else (bad,)
            code, details = send_raw(channel, s, messages)
            assert code == grpc.StatusCode.INVALID_ARGUMENT, (s.method, bad, code, details)
            assert "<class" not in details and "Unexpected" not in details, details
            assert details.startswith("request: "), details


def test_a_bad_message_later_in_a_request_stream_is_invalid_argument(server_channel):
    channel, _, _ = server_channel
    for s in seeds():
        if s.request_streaming:
            code, details = send_raw(channel, s, (s.messages[0], b"\xff"))
            assert code == grpc.StatusCode.INVALID_ARGUMENT, (s.method, code, details)


def test_mutated_requests_never_get_unknown_or_internal(server_channel):
    channel, handler, _ = server_channel
    counts = run_fuzz(channel, handler, NORMAL_CALLS, seed=19)
    assert sum(counts.values()) == NORMAL_CALLS
    assert counts["INVALID_ARGUMENT"] > 0  # the mutations do reach the decoder's refusals


@pytest.mark.slow
@pytest.mark.fuzz_long
def test_long_run_of_mutated_requests_never_gets_unknown_or_internal(server_channel):
    channel, handler, _ = server_channel
    start = time.perf_counter()
    counts = run_fuzz(channel, handler, LONG_CALLS, seed=LONG_SEED)
    seconds = time.perf_counter() - start
    print(f"\n{LONG_CALLS} mutated calls in {seconds:.1f} s: {dict(counts.most_common())}")
    assert sum(counts.values()) == LONG_CALLS


def test_an_undecodable_call_is_logged_with_its_request_id_and_counted(server_channel):
    import logging

    channel, _, server = server_channel
    predict = next(s for s in seeds() if s.method.endswith("/Predict"))
    before = server.state.metrics.calls.labels("Predict", "INVALID_ARGUMENT")._value.get()
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append  # on the call logger itself: works whatever propagation is configured
    calls_log = logging.getLogger("rnn.server.calls")
    calls_log.addHandler(handler)
    old_level = calls_log.level
    calls_log.setLevel(logging.INFO)
    try:
        with pytest.raises(grpc.RpcError) as err:
            channel.unary_unary(predict.method)(b"\xff", timeout=10,
                                                metadata=[("x-request-id", "undecodable-1")])
        deadline = time.monotonic() + 5  # the server writes the call's line just after sending its status
        while not any(getattr(r, "request_id", None) == "undecodable-1" for r in records):
            assert time.monotonic() < deadline, "no log line for the call"
            time.sleep(0.01)
    finally:
        calls_log.removeHandler(handler)
        calls_log.setLevel(old_level)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(err.value.trailing_metadata())["request-id"] == "undecodable-1"
    lines = [r for r in records if getattr(r, "request_id", None) == "undecodable-1"]
    assert [(r.method, r.status) for r in lines] == [("Predict", "INVALID_ARGUMENT")]
    assert server.state.metrics.calls.labels("Predict", "INVALID_ARGUMENT")._value.get() == before + 1
