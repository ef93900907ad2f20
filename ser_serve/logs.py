"""Logging of the serve command: readable text on a laptop, one JSON object per line in production."""

from __future__ import annotations

import logging
import sys


def configure_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    """Send the gateway's and supervisor's records to stdout as ``fmt`` ("text" or "json").

    JSON lines carry the record's extra fields (request_id, status, ms, ...),
    so a log collector can index them without parsing prose.
    """
    handler = logging.StreamHandler(sys.stdout)
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                                           rename_fields={"asctime": "time", "levelname": "level", "name": "logger"}))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("ser_serve", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
