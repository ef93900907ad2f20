"""Run a model server behind the gateway, and stop both gracefully.

SIGTERM or SIGINT (what `docker stop`, systemd and Kubernetes send, and
Ctrl-C) start the drain: readiness turns false, the gateway stops accepting
connections, requests already in flight get their answer (bounded by the
drain timeout), then the engine's whole process group is stopped and the
command exits 0. If the engine dies on its own, the gateway stops too and the
command exits 1, so an orchestrator restarts it. An engine that is running
but broken (``EngineProcess.broken``: Triton keeps serving errors after its
model process died) is restarted here, readiness false meanwhile; more than
``max_restarts`` within ``restart_window`` seconds is a failure (exit 1).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable, Protocol

from ser_serve.gateway.app import Auth, DrainState, Engine, create_app

logger = logging.getLogger("ser_serve.supervisor")


class EngineProcess(Protocol):
    """What the supervisor needs of an engine's launcher (see engines/torchserve/server.py)."""

    def start(self): ...
    def stop(self): ...
    def wait_ready(self, timeout: float = ...): ...
    def is_running(self) -> bool: ...
    # Optional: ``broken() -> str | None``, why a running engine cannot answer (None: healthy).


@dataclass
class GatewaySettings:
    host: str = "127.0.0.1"
    port: int = 8080
    # Default well inside Kubernetes' 30 s grace period, with room for a preStop sleep.
    drain_seconds: float = 20.0
    ready_timeout: float = 300.0
    # A broken engine is restarted at most this often in the window; beyond, the command fails.
    max_restarts: int = 3
    restart_window: float = 600.0


def serve(process: EngineProcess, engine: Engine, auth: Auth, settings: GatewaySettings,
          on_ready: Callable[[], None] = lambda: None) -> int:
    """Start the engine and the gateway; block until a signal or an engine failure; return the exit code."""
    import uvicorn

    drain = DrainState()
    config = uvicorn.Config(create_app(engine, auth, drain), host=settings.host, port=settings.port,
                            timeout_graceful_shutdown=settings.drain_seconds, access_log=False,
                            log_config=None, lifespan="on")
    failure = threading.Event()
    # A restart (stop, start) and the final stop never interleave, and nothing is started once stopping has begun:
    # otherwise a SIGTERM during a restart could leave a freshly started engine running after the command exits.
    engine_lock = threading.Lock()

    def begin_drain(signum: int) -> None:
        if not drain.draining:  # readiness false from the first signal on
            drain.draining = True
            logger.info("draining", extra={"signal": signal.Signals(signum).name, "drain_seconds": settings.drain_seconds})

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            begin_drain(sig)
            super().handle_exit(sig, frame)

    server = Server(config)

    def request_stop(signum, _frame) -> None:
        # Ours outside uvicorn's run (while the engine starts, and after): uvicorn
        # re-raises a captured signal after its graceful shutdown, and that must
        # land here, not kill the process before the engine is stopped.
        begin_drain(signum)
        server.should_exit = True

    def watch_engine() -> None:
        # Whatever happens to the engine once we are stopping it ourselves is not a failure.
        try:
            process.wait_ready(timeout=settings.ready_timeout)
        except Exception as exc:  # the engine never became ready: nothing to serve
            if not drain.draining:
                logger.error("engine failed to start", extra={"reason": str(exc)[-2000:]})
                failure.set()
                server.should_exit = True
            return
        if not drain.draining:
            on_ready()
        restarts: list[float] = []
        broken = getattr(process, "broken", lambda: None)
        while not server.should_exit and not drain.draining:
            if not process.is_running():
                logger.error("engine exited unexpectedly")
                failure.set()
                server.should_exit = True
                return
            reason = broken()
            if reason:
                now = time.monotonic()
                restarts = [at for at in restarts if now - at < settings.restart_window] + [now]
                if len(restarts) > settings.max_restarts:
                    logger.error("engine broken again: giving up", extra={"reason": reason, "restarts": len(restarts) - 1})
                    failure.set()
                    server.should_exit = True
                    return
                logger.error("engine broken: restarting it", extra={"reason": reason, "restart": len(restarts)})
                try:
                    with engine_lock:
                        if drain.draining:
                            return
                        process.stop()
                        if drain.draining:  # the signal came while the broken engine was stopping
                            return
                        process.start()
                    process.wait_ready(timeout=settings.ready_timeout)
                except Exception as exc:
                    if drain.draining:  # our own stop ended the restart: not a failure
                        return
                    logger.error("engine failed to restart", extra={"reason": str(exc)[-2000:]})
                    failure.set()
                    server.should_exit = True
                    return
                logger.info("engine restarted")
            threading.Event().wait(1.0)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    process.start()
    try:
        threading.Thread(target=watch_engine, name="engine-watch", daemon=True).start()
        server.run()  # returns once in-flight requests are answered or the drain timeout has passed
    finally:
        drain.draining = True
        with engine_lock:
            process.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    logger.info("stopped", extra={"engine_failed": failure.is_set()})
    return 1 if failure.is_set() else 0
