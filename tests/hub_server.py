"""A model hub on loopback that speaks the hub's download protocol, with faults on demand.

HEAD /{repo}/resolve/{revision}/{file} answers like the real hub for a file stored in LFS:
302 to a CDN path, with X-Repo-Commit, X-Linked-Etag (the file's SHA-256) and X-Linked-Size.
GET on either path serves the bytes, honouring Range with 206 and Content-Range. Every request
is recorded, so a test can count them.
"""

from __future__ import annotations

import hashlib
import socket
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Faults:
    head_status: int | None = None  # answer HEAD with this status
    get_status: int | None = None  # answer GET with this status
    # GET: the n-th GET sends cuts[n] bytes of its body, then cuts the connection; GETs past the
    # end of the list are served whole.
    cuts: list[int] = field(default_factory=list)
    stall_seconds: float = 0.0  # HEAD: wait this long before answering
    wrong_bytes: bool = False  # GET: serve other bytes of the same size
    ignore_range: bool = False  # GET: answer 200 with the whole file even when asked for a range
    seconds_per_64k: float = 0.0  # GET: send the body in 64 KiB pieces this far apart (a slow line)


@dataclass
class Request:
    method: str
    path: str
    range: str | None


@dataclass
class FakeHub:
    repo_id: str
    filename: str
    content: bytes
    revision: str = "main"
    faults: Faults = field(default_factory=Faults)
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sha256 = hashlib.sha256(self.content).hexdigest()
        self._release = threading.Event()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep the test output clean
                pass

            def do_HEAD(self) -> None:
                hub._record(self)
                if hub.faults.stall_seconds:
                    hub._release.wait(hub.faults.stall_seconds)
                if not self._known_path():
                    return self._status(404, entry_missing=True)
                if hub.faults.head_status:
                    return self._status(hub.faults.head_status)
                self.send_response(302)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("X-Linked-Etag", f'"{hub.sha256}"')
                self.send_header("X-Linked-Size", str(len(hub.content)))
                self.send_header("Location", f"/cdn/{hub.sha256}")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                hub._record(self)
                if not self._known_path():
                    return self._status(404, entry_missing=True)
                if hub.faults.get_status:
                    return self._status(hub.faults.get_status)
                body = hub.content
                if hub.faults.wrong_bytes:
                    body = bytes(reversed(body))
                start = 0
                requested = self.headers.get("Range")
                if requested and not hub.faults.ignore_range:
                    start = int(requested.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        return self._status(416)
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                part = body[start:]
                if hub.faults.cuts:
                    self.wfile.write(part[: hub.faults.cuts.pop(0)])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if hub.faults.seconds_per_64k:
                    for offset in range(0, len(part), 65536):
                        if hub._release.wait(hub.faults.seconds_per_64k):
                            return  # the server is stopping
                        self.wfile.write(part[offset : offset + 65536])
                    return
                self.wfile.write(part)

            def _known_path(self) -> bool:
                resolve = f"/{hub.repo_id}/resolve/{hub.revision}/{hub.filename}"
                return self.path in (resolve, f"/cdn/{hub.sha256}")

            def _status(self, code: int, entry_missing: bool = False) -> None:
                self.send_response(code)
                if entry_missing:
                    self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Content-Length", "0")
                self.end_headers()

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:
                # A client that cancels mid-file resets the connection: expected, not worth a traceback.
                if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
                    super().handle_error(request, client_address)

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _record(self, handler: BaseHTTPRequestHandler) -> None:
        self.requests.append(Request(handler.command, handler.path, handler.headers.get("Range")))

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()


def unreachable_url() -> str:
    """An address on loopback where nothing listens: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
