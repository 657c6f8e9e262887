"""The HTTP plumbing: a threaded server on 127.0.0.1 that hands every request to :meth:`FakeOpenAI.handle`.

It knows nothing of the API; it reads bodies (chunked too), writes the answer the fake gives, and carries
out the delivery faults that answer asks for (a cut body, a dropped connection, a delay).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import TYPE_CHECKING, Any

from .wire import ORGANIZATION, Response

if TYPE_CHECKING:
    from .server import FakeOpenAI


class HTTPServer(ThreadingHTTPServer):
    """Serves ``fake`` on a free loopback port, a thread per connection, and can cut every connection."""

    daemon_threads = False  # so server_close() joins every handler thread
    block_on_close = True

    def __init__(self, fake: FakeOpenAI) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self.stopping = threading.Event()
        super().__init__(("127.0.0.1", 0), RequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (a DNS lookup); loopback needs none.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    def drop_connections(self) -> None:
        """Shut idle keep-alive connections so their handler threads end."""
        with self.connections_lock:
            for connection in self.connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that hangs up mid-response is not a server bug.
        pass


class RequestHandler(BaseHTTPRequestHandler):
    """One keep-alive connection: each request goes to the fake, each answer back as it asks."""

    protocol_version = "HTTP/1.1"
    server: HTTPServer

    def setup(self) -> None:
        super().setup()
        # Without it Nagle's algorithm and the client's delayed ACK add ~40 ms to every exchange.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except ConnectionResetError:
            # The client reset the connection (say after a timeout, before a late answer): just close it.
            self.close_connection = True

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def _serve(self, method: str) -> None:
        body = self._read_body()
        headers = {key.lower(): value for key, value in self.headers.items()}
        started = time.perf_counter()
        response = self.server.fake.handle(method, self.path, headers, body)
        if response.drop or (response.delay > 0 and self.server.stopping.wait(response.delay)):
            # Closed unanswered: drop_connections(), or stop() during a delay_responses() wait.
            self.close_connection = True
            return
        try:
            self._send(response, started)
        except (BrokenPipeError, ConnectionResetError):
            # The client hung up (a timeout during a delay, a cut download): nobody is left to answer.
            self.close_connection = True

    def _send(self, response: Response, started: float) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("x-request-id", "req_" + uuid.uuid4().hex)
        self.send_header("openai-organization", ORGANIZATION)
        self.send_header("openai-version", "2020-10-01")
        self.send_header("openai-processing-ms", str(int((time.perf_counter() - started) * 1000)))
        for key, value in response.headers.items():
            self.send_header(key, value)
        payload = response.body
        if response.cut:
            payload = payload[: len(payload) // 2]
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline(65_537).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65_537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65_537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""
