"""Requests aiohttp's HTTP parser refuses before authq sees them: the client's mistake, not ours.

A repeated singleton header (two ``Content-Type`` lines), a malformed request line or an
oversized header is answered ``400`` by aiohttp itself. It would log each one with a full
traceback, as if the server had failed; here it is one warning line instead. Everything
else aiohttp's server logs passes through unchanged.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.log import server_logger


class ProtocolErrorLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError) and 400 <= exc_info.code < 500:
            self.logger.warning("refused a malformed HTTP request (%s): %s", exc_info.code, exc_info.message,
                                **kwargs)
            return
        self.logger.exception(msg, *args, exc_info=exc_info, **kwargs)


def server_log() -> ProtocolErrorLog:
    """The ``logger`` for aiohttp's request handler (``web.Application(handler_args=...)``)."""
    return ProtocolErrorLog(server_logger, {})
