"""The supervisor's restart of a broken engine against a SIGTERM that arrives during the restart.

A fake engine (it records what is done to it) behind the real gateway, in a
child process so that the supervisor owns that process's signal handlers.
Found in a clean-clone CI run under load: Triton's model process was killed,
the supervisor was still waiting for the restarted Triton to be ready when
SIGTERM came, the final stop ended that wait, and the command exited 1
("engine failed to restart") instead of 0.
"""

import json
import signal
import subprocess
import sys
import time

import pytest

CHILD = r"""
import json, sys, threading, time
from ser_serve.engines.process import free_port
from ser_serve.gateway.app import Auth, Engine
from ser_serve.supervisor import GatewaySettings, serve

log_path, slow = sys.argv[1], sys.argv[2]

def record(event):
    with open(log_path, "a") as f:
        f.write(event + "\n")

class FakeEngine:
    # Healthy after the first start, then broken once; the restarted engine takes long to be ready (slow=ready)
    # or to stop (slow=stop), and a stop ends a wait for readiness with an error, as Triton's does.
    def __init__(self):
        self.starts, self.running, self.stopped, self.reported = 0, False, threading.Event(), False
    def start(self):
        self.starts += 1
        self.running = True
        self.stopped.clear()
        record(f"start {self.starts}")
    def stop(self):
        record("stop begins")
        if slow == "stop" and self.starts == 1:
            record("restart stopping")
            time.sleep(3)
        self.running = False
        self.stopped.set()
        record("stop ends")
    def wait_ready(self, timeout=300):
        if self.starts == 1:
            return
        record("restart waiting")
        if self.stopped.wait(60 if slow == "ready" else 0.5):
            raise RuntimeError("the engine exited")
    def is_running(self):
        return self.running
    def broken(self):
        if self.reported:
            return None
        self.reported = True
        return "one model process died"

engine = FakeEngine()
gateway = Engine(predictions_url=None, metrics_url=None, alive=lambda: True, ready=lambda: True,
                 local=lambda body: {"results": [], "dominant": None})
code = serve(engine, gateway, Auth(), GatewaySettings(port=free_port(), drain_seconds=2))
record(json.dumps({"exit": code, "running": engine.running}))
"""


def run_and_terminate_during(tmp_path, slow: str, marker: str) -> list[str]:
    log = tmp_path / "events.log"
    log.touch()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(log), slow], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while marker not in log.read_text() and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.05)
        assert marker in log.read_text(), (log.read_text(), child.poll())
        child.send_signal(signal.SIGTERM)
        output = child.communicate(timeout=60)[0]
    finally:
        child.kill()
    events = log.read_text().splitlines()
    assert events and events[-1].startswith("{"), (events, output)
    return events


@pytest.mark.parametrize("slow,marker", [("ready", "restart waiting"), ("stop", "restart stopping")])
def test_sigterm_during_a_restart_exits_0_and_leaves_no_engine_running(tmp_path, slow, marker):
    events = run_and_terminate_during(tmp_path, slow, marker)
    assert json.loads(events[-1]) == {"exit": 0, "running": False}, events
    assert events[0] == "start 1"
    # Signalled while the restarted engine loads: it is stopped; while the broken one stops: no new one is started.
    assert ("start 2" in events) == (slow == "ready"), events
    # The engine's last event is a finished stop: nothing was started after the final stop began.
    assert events[-2] == "stop ends", events
    last_start = max(i for i, e in enumerate(events) if e.startswith("start"))
    assert last_start < max(i for i, e in enumerate(events) if e == "stop begins"), events
