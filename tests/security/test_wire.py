"""What a peer with raw HTTP/2 can hold: half-open calls, a silent request, the stream and call limits, and
every spelling of the authorization header. The peer is tests/security/rawh2.py (frames exactly as sent)."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rnn.v1 import common_pb2 as pb
from rnn.v1 import inference_service_pb2 as ipb
from rnn.v1 import model_service_pb2 as mpb
from tests.security.helpers import INFER_TOKEN, Stubs, save_tiny_models, start_server, write_tokens

from .rawh2 import RawPeer

PREDICT = "/rnn.v1.InferenceService/Predict"
LIST = "/rnn.v1.ModelService/ListModels"
HEALTH = "/grpc.health.v1.Health/Check"
PREDICT_MSG = ipb.PredictRequest(model="lm", inputs=[pb.SequenceInput(text="the cat")]).SerializeToString()
REFUSED_STREAM = 7


@pytest.fixture
def models(tmp_path):
    save_tiny_models(tmp_path, ("lm",))
    return tmp_path


def serve(models, **overrides):
    server, port = start_server(models, **overrides)
    return server, port


def health_ok(channel) -> bool:
    response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    return response.status == health_pb2.HealthCheckResponse.SERVING


def test_the_server_advertises_its_per_connection_stream_limit(models):
    server, port = serve(models, max_streams_per_connection=7)
    peer = RawPeer(port)
    try:
        assert peer.server_settings[0x3] == 7  # SETTINGS_MAX_CONCURRENT_STREAMS
    finally:
        peer.close()
        server.drain(1)


def test_the_default_per_connection_limit_leaves_room_above_the_call_limit(models):
    server, port = serve(models)  # max_concurrent_calls 0: max_concurrent_streams (64) + 16 = 80
    peer = RawPeer(port)
    try:
        assert peer.server_settings[0x3] == 4 * 80
    finally:
        peer.close()
        server.drain(1)


def test_a_client_within_the_call_limit_is_never_refused_by_the_transport(models):
    """64 callers on one channel, each starting its next Predict as soon as one ends: grpc counts a finished
    stream until its call is cleaned up on the server's event loop, so with a per-connection limit of 100
    about 5% of these calls failed UNAVAILABLE (RST_STREAM REFUSED_STREAM) before the default left room."""
    import asyncio

    server, port = serve(models)  # with max_streams_per_connection=65 this fails here (1 call in 40 refused)

    async def callers() -> tuple[int, list[str]]:
        done, failures = 0, []
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            predict = channel.unary_unary(PREDICT, request_serializer=None, response_deserializer=None)
            stop = time.monotonic() + 3.0

            async def caller() -> None:
                nonlocal done
                while time.monotonic() < stop:
                    try:
                        await predict(PREDICT_MSG, timeout=30)
                        done += 1
                    except grpc.aio.AioRpcError as exc:
                        failures.append(f"{exc.code().name}: {exc.details()}")

            await asyncio.gather(*(caller() for _ in range(64)))
        return done, failures

    try:
        done, failures = asyncio.run(callers())
        assert done >= 64 and not failures, (done, failures[:3], len(failures))
    finally:
        server.drain(1)


def test_streams_over_the_per_connection_limit_are_refused_by_http2(models):
    server, port = serve(models, max_streams_per_connection=5)
    peer = RawPeer(port, ignore_stream_limit=True)  # a peer that ignores the server's SETTINGS
    try:
        sids = [peer.open(LIST) for _ in range(8)]  # HEADERS only: half-open
        peer.pump(2)
        resets = [peer.streams[s].reset for s in sids]
        assert resets.count(REFUSED_STREAM) >= 3, resets
    finally:
        peer.close()
        server.drain(1)


def test_half_open_calls_from_one_peer_do_not_block_other_clients_or_health(models):
    """The old DoS: ~80 calls that never send their message filled grpc's maximum_concurrent_rpcs."""
    server, port = serve(models, max_concurrent_streams=4, max_streams_per_connection=100)
    peers = [RawPeer(port) for _ in range(3)]
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        methods = [PREDICT, LIST, "/rnn.v1.InferenceService/PredictStream"] * 33
        sids = [(p, p.open(m)) for p in peers for m in methods]
        for p in peers:
            p.pump(0.3)
        assert all(p.streams[s].status() is None for p, s in sids)  # all still open, waiting for a message
        assert health_ok(channel)
        out = Stubs(channel).inference.Predict(ipb.PredictRequest.FromString(PREDICT_MSG), timeout=10)
        assert len(out.outputs) == 1
        assert Stubs(channel).models.ListModels(mpb.ListModelsRequest(), timeout=10).models
    finally:
        for p in peers:
            p.close()
        channel.close()
        server.drain(1)


def test_a_call_whose_request_message_never_arrives_ends_naming_request_message_timeout(models):
    server, port = serve(models, request_message_timeout=0.5)
    peer = RawPeer(port)
    try:
        sid = peer.open(PREDICT)  # HEADERS, then nothing
        result = peer.wait(sid, 10)
        assert result.status() == grpc.StatusCode.DEADLINE_EXCEEDED.value[0], result
        assert "request_message_timeout" in result.message()
        stream = peer.open("/rnn.v1.InferenceService/PredictStream")  # a request stream's first message too
        assert peer.wait(stream, 10).status() == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
        assert 'rnn_refused_calls_total{limit="request_message_timeout",method="Predict"} 1.0' in \
            server.state.metrics.text()  # counted before the status is sent
        deadline = time.monotonic() + 5  # the call's own record is written just after its status
        while 'rnn_grpc_calls_total{method="Predict",status="DEADLINE_EXCEEDED"} 1.0' not in \
                server.state.metrics.text():
            assert time.monotonic() < deadline, server.state.metrics.text()
            time.sleep(0.01)
    finally:
        peer.close()
        server.drain(1)


def test_without_credentials_a_half_open_call_is_refused_at_its_headers(models, tmp_path):
    tokens = write_tokens(tmp_path / "tokens")
    server, port = serve(models, auth_tokens_file=tokens, request_message_timeout=60)
    peer = RawPeer(port)
    try:
        sid = peer.open(PREDICT)  # no authorization, no message
        result = peer.wait(sid, 5)
        assert result.status() == grpc.StatusCode.UNAUTHENTICATED.value[0], result
    finally:
        peer.close()
        server.drain(1)


@pytest.mark.parametrize("value", [
    b"Bearer " + INFER_TOKEN.encode(), b"bearer " + INFER_TOKEN.encode(), b"BEARER " + INFER_TOKEN.encode()])
def test_the_bearer_scheme_is_case_insensitive(models, tmp_path, value):
    server, port = serve(models, auth_tokens_file=write_tokens(tmp_path / "tokens"))
    peer = RawPeer(port)
    try:
        sid = peer.open(LIST, [(b"authorization", value)], mpb.ListModelsRequest().SerializeToString())
        assert peer.wait(sid).status() == 0
    finally:
        peer.close()
        server.drain(1)


MALFORMED = {
    "two spaces": [(b"authorization", b"Bearer  " + INFER_TOKEN.encode())],
    "trailing space": [(b"authorization", b"Bearer " + INFER_TOKEN.encode() + b" ")],
    "CR LF": [(b"authorization", b"Bearer " + INFER_TOKEN.encode() + b"\r\n")],
    "NUL": [(b"authorization", b"Bearer " + INFER_TOKEN.encode() + b"\x00")],
    "tab": [(b"authorization", b"Bearer\t" + INFER_TOKEN.encode())],
    "other scheme": [(b"authorization", b"Basic " + INFER_TOKEN.encode())],
    "no scheme": [(b"authorization", INFER_TOKEN.encode())],
    "duplicate": [(b"authorization", b"Bearer " + INFER_TOKEN.encode())] * 2,
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_or_repeated_authorization_header_is_unauthenticated(models, tmp_path, case):
    server, port = serve(models, auth_tokens_file=write_tokens(tmp_path / "tokens"))
    peer = RawPeer(port)
    try:
        sid = peer.open(LIST, MALFORMED[case], mpb.ListModelsRequest().SerializeToString())
        result = peer.wait(sid)
        assert result.status() == grpc.StatusCode.UNAUTHENTICATED.value[0], (case, result)
        assert "authorization" in result.message()
    finally:
        peer.close()
        server.drain(1)


def test_one_token_spelled_differently_is_one_client_for_the_stream_limit(models, tmp_path):
    server, port = serve(models, auth_tokens_file=write_tokens(tmp_path / "tokens"), max_streams_per_client=1)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stubs = Stubs(channel)
    gate = threading.Event()

    def requests():  # a stream held open until the test ends
        yield ipb.PredictStreamRequest(model="lm", sequence_id="a", start=True,
                                       chunk=pb.SequenceInput(text="t"))
        gate.wait(20)

    held = stubs.inference.PredictStream(requests(), metadata=[("authorization", f"Bearer {INFER_TOKEN}")],
                                         timeout=30)
    try:
        next(held)  # the first stream is open
        for spelling in (f"bearer {INFER_TOKEN}", f"BEARER {INFER_TOKEN}"):
            with pytest.raises(grpc.RpcError) as err:
                list(stubs.inference.PredictStream(iter([ipb.PredictStreamRequest(
                    model="lm", sequence_id="b", start=True, chunk=pb.SequenceInput(text="t"))]),
                    metadata=[("authorization", spelling)], timeout=10))
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "max_streams_per_client" in err.value.details()
    finally:
        gate.set()
        held.cancel()
        channel.close()
        server.drain(1)


def test_a_full_call_limit_is_refused_naming_it_and_counted_while_health_answers(models):
    server, port = serve(models, max_concurrent_calls=1)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stubs = Stubs(channel)
    gate = threading.Event()

    def requests():
        yield ipb.PredictStreamRequest(model="lm", sequence_id="a", start=True,
                                       chunk=pb.SequenceInput(text="t"))
        gate.wait(20)

    held = stubs.inference.PredictStream(requests(), timeout=30)
    try:
        next(held)  # holds the one call slot
        with pytest.raises(grpc.RpcError) as err:
            stubs.models.ListModels(mpb.ListModelsRequest(), timeout=10)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_concurrent_calls" in err.value.details()
        assert health_ok(channel)  # health is outside the call limit
        text = server.state.metrics.text()
        assert 'rnn_refused_calls_total{limit="max_concurrent_calls",method="ListModels"} 1.0' in text
    finally:
        gate.set()
        held.cancel()
        channel.close()
        server.drain(1)
