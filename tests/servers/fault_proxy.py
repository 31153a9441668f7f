"""A loopback TCP proxy in front of a registry server that loses answers on purpose.

One request per connection (it adds ``Connection: close``). A fault names a method and a
path prefix; the next matching requests are forwarded to the server, so whatever they do
happens, and then the client gets a 503 instead of the answer (``"503"``) or the
connection is closed without any answer (``"drop"``). ``"refuse-503"`` answers 503 without
forwarding. The proxy counts what it forwarded.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

__all__ = ["FaultProxy", "fault_proxy_for"]

_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n"
    b"content-length: 11\r\nconnection: close\r\n\r\nunavailable"
)


@dataclass
class _Fault:
    method: str
    path: str
    kind: str
    remaining: int


@dataclass
class FaultProxy:
    upstream: tuple[str, int]
    faults: list[_Fault] = field(default_factory=list)
    forwarded: list[str] = field(default_factory=list)
    url: str = ""

    def inject(self, method: str, path: str, kind: str, times: int = 1) -> None:
        self.faults.append(_Fault(method, path, kind, times))

    def _fault_for(self, method: str, path: str) -> str | None:
        for fault in self.faults:
            if fault.remaining and fault.method == method and path.startswith(fault.path):
                fault.remaining -= 1
                return fault.kind
        return None

    def serve(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        with client:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = client.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            length = 0
            kept = []
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.lower() == "content-length":
                    length = int(value.strip())
                if name.lower() != "connection":
                    kept.append(line)
            while len(body) < length:
                body += client.recv(65536)
            fault = self._fault_for(method, path)
            if fault == "refuse-503":
                client.sendall(_503)
                return
            request = "\r\n".join([lines[0], *kept, "connection: close"]).encode() + b"\r\n\r\n"
            with socket.create_connection(self.upstream) as upstream:
                upstream.sendall(request + body)
                answer = b""
                while chunk := upstream.recv(65536):
                    answer += chunk
            self.forwarded.append(f"{method} {path}")
            if fault == "drop":
                client.shutdown(socket.SHUT_RDWR)
                return
            client.sendall(_503 if fault == "503" else answer)


def fault_proxy_for(server_url: str) -> Iterator[FaultProxy]:
    """Start a proxy in front of ``server_url`` (a generator for a fixture)."""
    host, port = server_url.removeprefix("http://").split(":")
    proxy = FaultProxy((host, int(port)))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    proxy.url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    thread = threading.Thread(target=proxy.serve, args=(listener,), daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        listener.close()


@pytest.fixture
def fault_proxy(server: object) -> Iterator[FaultProxy]:
    yield from fault_proxy_for(server.url)  # type: ignore[attr-defined]
