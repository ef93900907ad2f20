"""A small closed-loop HTTP load generator: N clients, bounded in requests and time.

Used by the benchmark, where every client must send exactly the same clips
to every configuration; the locust suite is for load tests of a deployment.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import requests


@dataclass
class LoadResult:
    """Latencies in seconds (successful requests only) and counts by status."""

    concurrency: int
    latencies: list[float] = field(default_factory=list)
    audio_seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    wall_seconds: float = 0.0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def summary(self) -> dict:
        ok = len(self.latencies)
        p50, p95, p99 = (np.percentile(self.latencies, [50, 95, 99]) * 1000).tolist() if ok else [None] * 3
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "ok": ok,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "wall_s": round(self.wall_seconds, 3),
            "requests_per_s": ok / self.wall_seconds if self.wall_seconds else 0.0,
            "audio_s_per_s": self.audio_seconds / self.wall_seconds if self.wall_seconds else 0.0,
            "p50_ms": p50,
            "p95_ms": p95,
            "p99_ms": p99,
        }


def run_closed_loop(
    url: str,
    payloads: Sequence[tuple[bytes, float]],
    headers: dict,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    timeout: float = 120.0,
    encode: Callable[[bytes], tuple[bytes, dict]] | None = None,
) -> LoadResult:
    """Send ``payloads`` (bytes, audio seconds) round-robin from ``concurrency`` clients.

    Stops after ``max_requests`` requests or ``max_seconds``, whichever comes
    first; each client waits for its answer before sending the next request.
    Each payload is PUT as the body (TorchServe's API), or, with ``encode``,
    POSTed as the (body, extra headers) it returns (Triton's v2 protocol);
    payloads are encoded once, before the clock starts.
    """
    if encode is not None:
        payloads = [(encode(data), seconds) for data, seconds in payloads]
    result = LoadResult(concurrency=concurrency)
    lock = threading.Lock()
    counter = iter(range(max_requests))
    deadline = time.monotonic() + max_seconds

    def client():
        session = requests.Session()
        while time.monotonic() < deadline:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            data, seconds = payloads[index % len(payloads)]
            started = time.perf_counter()
            try:
                if encode is None:
                    status = session.put(url, data=data, headers=headers, timeout=timeout).status_code
                else:
                    body, extra = data
                    status = session.post(url, data=body, headers={**headers, **extra}, timeout=timeout).status_code
            except requests.RequestException:
                status = 0  # connection failure or timeout
            elapsed = time.perf_counter() - started
            with lock:
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status == 200:
                    result.latencies.append(elapsed)
                    result.audio_seconds += seconds

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max_seconds + timeout)
    result.wall_seconds = time.perf_counter() - started
    return result
