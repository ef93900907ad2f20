"""Process and port helpers both engines' launchers use."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time


# Ports free_port has handed out in this process. Its probe socket is closed before the caller binds, so the
# kernel may offer the same port to the next call: seen here, a config's management address got the port its
# inference address had been given, and TorchServe failed with "Address already in use".
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, never one this process was given before."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def group_members(process: subprocess.Popen | None) -> list:
    """psutil.Process objects still running in ``process``'s group (it was started with start_new_session)."""
    import psutil

    if process is None:
        return []
    process.poll()  # reap our direct child if it has exited
    members = []
    for candidate in psutil.process_iter(["status"]):
        try:
            if os.getpgid(candidate.pid) == process.pid and candidate.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(candidate)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def stop_group(process: subprocess.Popen | None, timeout: float = 30.0) -> None:
    """SIGTERM ``process``'s whole group, SIGKILL what is left after ``timeout``; return when none is left."""
    if process is None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while group_members(process) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not group_members(process):
            break
    process.wait()
