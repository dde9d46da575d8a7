"""A webhook on loopback for the outbox relays' tests (tests/models/test_outbox_relay.py,
tests/stack/test_replicas.py): an HTTP server on 127.0.0.1, port chosen by the kernel, in a
thread of the test process."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Delivery:
    """One POST, as it arrived."""

    path: str  # the path posted to, without its leading "/" (a relay's own, if it has one)
    headers: dict[str, str]
    body: bytes
    time: float  # time.monotonic() on arrival
    status: int  # what the webhook answered

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


class WebhookReceiver:
    """Keeps every POST in the order it arrived; answers 500 to the first `failures`, then
    200, each after `delay` seconds. `on_post(path)`, if given, runs as each POST arrives,
    before it is answered (to look at the sender while it waits). Serves while open: use it
    as a context manager, or `start()` and `close()`."""

    def __init__(
        self,
        *,
        failures: int = 0,
        delay: float = 0.0,
        on_post: Callable[[str], None] | None = None,
    ) -> None:
        self.failures = failures
        self._deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                arrived = time.monotonic()
                path = self.path.lstrip("/")
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if on_post is not None:
                    on_post(path)
                if delay:
                    time.sleep(delay)
                with hook._lock:
                    status = 500 if len(hook._deliveries) < hook.failures else 200
                    hook._deliveries.append(
                        Delivery(path, dict(self.headers), body, arrived, status)
                    )
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str = "hook") -> str:
        return f"http://127.0.0.1:{self._server.server_port}/{path}"

    def deliveries(self) -> list[Delivery]:
        """Every POST so far, answered or refused, in arrival order."""
        with self._lock:
            return list(self._deliveries)

    def accepted(self) -> list[dict[str, Any]]:
        """The events answered 200, in arrival order."""
        return [d.event for d in self.deliveries() if d.status == 200]

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()  # waits for serve_forever: only once it runs
            self._thread.join(5)
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
