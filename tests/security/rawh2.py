"""A raw HTTP/2 gRPC peer (the h2 package over a plain socket): sends exactly the frames a test asks for.

Unlike a gRPC client it can open calls and never send their message (half-open calls), send header values
a client library would refuse (CR LF, NUL, duplicate `authorization`), and ignore the server's
SETTINGS_MAX_CONCURRENT_STREAMS. Responses are collected per stream: headers, trailers, data, resets.
"""

from __future__ import annotations

import collections
import socket
import time
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.settings


@dataclass
class StreamResult:
    headers: list = field(default_factory=list)
    trailers: list = field(default_factory=list)
    data: bytes = b""
    reset: int | None = None  # RST_STREAM error code
    ended: bool = False

    def status(self) -> int | None:
        """grpc-status of the call (trailers, or a trailers-only response), None while it is open."""
        for key, value in (*self.trailers, *self.headers):
            if key == b"grpc-status":
                return int(value)
        return None

    def message(self) -> str:
        for key, value in (*self.trailers, *self.headers):
            if key == b"grpc-message":
                return value.decode("latin-1")
        return ""


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message (uncompressed)."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


class RawPeer:
    """One HTTP/2 connection to 127.0.0.1:`port`; `open()` starts a call, `pump()` reads what arrives."""

    def __init__(self, port: int, ignore_stream_limit: bool = False) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        config = h2.config.H2Configuration(client_side=True, header_encoding=None,
                                           validate_outbound_headers=False, normalize_outbound_headers=False,
                                           validate_inbound_headers=False)
        self.conn = h2.connection.H2Connection(config)
        self.conn.initiate_connection()
        self.streams: dict[int, StreamResult] = collections.defaultdict(StreamResult)
        self.server_settings: dict[int, int] = {}
        self.ignore_stream_limit = ignore_stream_limit
        self.closed = False
        self._flush()
        self.pump(0.5, until=lambda: bool(self.server_settings))

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def open(self, method: str, metadata: list[tuple[bytes | str, bytes | str]] = (),
             message: bytes | None = None, end: bool = True) -> int:
        """Send HEADERS for `method` (and the message, half-closing when `end`); returns the stream id.
        With message None the call is left half-open: HEADERS only, never a message."""
        if self.ignore_stream_limit:  # act as a peer that does not honour the server's SETTINGS
            settings = self.conn.remote_settings
            code = h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS
            settings._settings[code] = collections.deque([2**31 - 1])
        sid = self.conn.get_next_available_stream_id()
        headers = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", method.encode()),
                   (b":authority", b"127.0.0.1"), (b"content-type", b"application/grpc"),
                   (b"te", b"trailers")]
        headers += [(k.encode() if isinstance(k, str) else k, v.encode() if isinstance(v, str) else v)
                    for k, v in metadata]
        self.conn.send_headers(sid, headers, end_stream=False)
        if message is not None:
            self.conn.send_data(sid, grpc_frame(message), end_stream=end)
        self._flush()
        self.streams[sid]  # noqa: B018 - create the record
        return sid

    def pump(self, seconds: float, until=None) -> None:
        """Read and handle frames for up to `seconds` (less once `until()` is true)."""
        deadline = time.monotonic() + seconds
        while not self.closed and (until is None or not until()):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return
            if not data:
                self.closed = True
                return
            for event in self.conn.receive_data(data):
                self._handle(event)
            self._flush()

    def _handle(self, event) -> None:
        if isinstance(event, h2.events.RemoteSettingsChanged):
            self.server_settings.update({int(k): v.new_value for k, v in event.changed_settings.items()})
        elif isinstance(event, h2.events.ResponseReceived):
            self.streams[event.stream_id].headers = list(event.headers)
        elif isinstance(event, h2.events.TrailersReceived):
            self.streams[event.stream_id].trailers = list(event.headers)
        elif isinstance(event, h2.events.DataReceived):
            self.streams[event.stream_id].data += event.data
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            self.streams[event.stream_id].ended = True
        elif isinstance(event, h2.events.StreamReset):
            self.streams[event.stream_id].reset = int(event.error_code)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.closed = True

    def wait(self, sid: int, seconds: float = 10) -> StreamResult:
        """The stream's result once it has ended (status or reset), or as it is after `seconds`."""
        result = self.streams[sid]
        self.pump(seconds, until=lambda: result.status() is not None or result.reset is not None)
        return result

    def close(self) -> None:
        try:
            self.conn.close_connection()
            self._flush()
        except OSError:
            pass
        self.sock.close()
