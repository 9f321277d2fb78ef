"""A WSGI app (the Flask/Authlib test servers) on 127.0.0.1:<free port>, in a thread."""

from __future__ import annotations

import threading
from typing import Any

from werkzeug.serving import make_server


class ServedWsgi:
    def __init__(self, app: Any, name: str) -> None:
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
