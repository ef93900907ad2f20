"""Waiting for a served gateway the way an orchestrator does: by its /readyz endpoint."""

from __future__ import annotations

import time
from typing import Callable

import requests


def wait_until_ready(base_url: str, timeout: float = 300.0, still_running: Callable[[], bool] = lambda: True,
                     describe: Callable[[], str] = lambda: "", probe_timeout: float = 2.0) -> None:
    """Poll ``base_url``/readyz until it answers 200.

    A probe that is refused or not answered within ``probe_timeout`` seconds
    counts as "not ready yet", as an orchestrator's readiness probe does: a
    server still starting (two replicas loading on two cores) may accept the
    connection long before it answers. Raises RuntimeError when
    ``still_running()`` turns false (the server exited), TimeoutError after
    ``timeout`` seconds; both carry ``describe()`` (e.g. the server's log tail).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not still_running():
            raise RuntimeError(f"the server at {base_url} exited before it was ready\n{describe()}")
        try:
            if requests.get(f"{base_url}/readyz", timeout=probe_timeout).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{base_url} was not ready within {timeout:.0f} s\n{describe()}")
