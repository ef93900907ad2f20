"""Several `ser-serve serve` replicas behind a real nginx on one machine, and a failover drill.

`make failover` (and tests/integration/test_replicas.py) starts N replicas in
the production profile, nginx in front (deploy/nginx/ser-serve.conf.template),
drives nginx with the locust suite, SIGKILLs one replica mid-run (gateway
and TorchServe together, as a crashed pod), and reports what happened to every
request: answered, retried on another replica, or lost.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import yaml

from ser_serve.clients.probes import wait_until_ready
from ser_serve.packaging import DEFAULT_MODEL_CONFIG
from ser_serve.engines.torchserve.server import DEFAULT_SERVER_CONFIG, free_port, read_properties, with_free_ports, write_properties
from ser_serve.workspace import BUILD_DIR, default_model_dir

NGINX_TEMPLATE = Path(__file__).resolve().parents[1] / "deploy" / "nginx" / "ser-serve.conf.template"
NGINX = next((p for p in ("/usr/sbin/nginx", "/usr/bin/nginx") if Path(p).exists()), "nginx")


class Replica:
    """One `ser-serve serve --profile production --no-auth` on a free loopback port."""

    def __init__(self, root: Path, model_dir: Path, name: str, batch_delay_ms: int):
        self.root, self.name = root / name, name
        self.root.mkdir(parents=True)
        self.port = free_port()
        config = write_properties(with_free_ports(read_properties(DEFAULT_SERVER_CONFIG)), self.root / "config.properties")
        model_config = {**yaml.safe_load(DEFAULT_MODEL_CONFIG.read_text()), "maxBatchDelay": batch_delay_ms}
        (self.root / "model-config.yaml").write_text(yaml.safe_dump(model_config))
        command = [sys.executable, "-m", "ser_serve.cli", "serve", "--profile", "production", "--no-auth",
                   "--host", "127.0.0.1", "--port", str(self.port), "--model-dir", str(model_dir),
                   "--config", str(config), "--model-config", str(self.root / "model-config.yaml"),
                   "--workdir", str(self.root / "work"), "--model-store", str(self.root / "store")]
        self.log = open(self.root / "serve.log", "wb")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 300) -> None:
        wait_until_ready(f"http://{self.address}", timeout, lambda: self.process.poll() is None,
                         lambda: (self.root / "serve.log").read_text()[-3000:])

    def members(self) -> list:
        """The replica's processes: the serve command and everything below it (TorchServe's own group too)."""
        import psutil

        try:
            parent = psutil.Process(self.process.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> None:
        """SIGKILL the whole replica at once: no drain, as when a pod or machine dies."""
        for process in self.members():
            try:
                process.kill()
            except Exception:
                pass
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


class Nginx:
    """nginx in the foreground with a config rendered from the template, everything under ``prefix``."""

    def __init__(self, prefix: Path, upstreams: list[str]):
        self.prefix = prefix = prefix.resolve()
        prefix.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        servers = "\n".join(f"        server {address} max_fails=1 fail_timeout=10s;" for address in upstreams)
        config = (NGINX_TEMPLATE.read_text().replace("{{prefix}}", str(prefix)).replace("{{servers}}", servers)
                  .replace("{{listen}}", f"127.0.0.1:{self.port}")
                  # As root, nginx's workers would run as nobody, who cannot write under prefix.
                  .replace("{{user}}", "user root;" if os.geteuid() == 0 else ""))
        self.config = prefix / "nginx.conf"
        self.config.write_text(config)
        check = subprocess.run([NGINX, "-t", "-p", str(prefix), "-c", str(self.config)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"nginx refused the config: {check.stderr}")
        self.process = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(self.config)],
                                        stdout=subprocess.DEVNULL, stderr=open(prefix / "nginx.stderr", "wb"))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def access_log(self) -> list[dict]:
        path = self.prefix / "access.log"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def stop(self) -> None:
        self.process.send_signal(signal.SIGQUIT)  # graceful: finish what is in flight
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def run_failover(model_dir: Path, out: Path, replicas: int = 2, users: int = 4, seconds: float = 24,
                 kill_after: float = 10, batch_delay_ms: int = 200) -> dict:
    """Start the replicas and nginx, load them, kill replica 0 after ``kill_after`` s; return the report."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        started = [Replica(out, model_dir, f"replica-{i}", batch_delay_ms) for i in range(replicas)]
        for replica in started:
            stack.callback(replica.stop)
        for replica in started:
            replica.wait_ready()
        nginx = Nginx(out / "nginx", [replica.address for replica in started])
        stack.callback(nginx.stop)
        victim = started[0]
        killed_at: list[float] = []

        def kill_later():
            time.sleep(kill_after)
            killed_at.append(time.time())
            victim.kill()

        from ser_tools import loadtest

        load_out = out / "load"
        killer = threading.Thread(target=kill_later, daemon=True)
        killer.start()
        code = loadtest.main(["--url", nginx.url, "--protocol", "rest", "--shape", "steady", "--users", str(users),
                              "--seconds", str(seconds), "--max-requests", "1000000", "--slo-p95-ms", "60000",
                              "--slo-p99-ms", "60000", "--clip-cache", str(BUILD_DIR / "clips"), "--out", str(load_out)])
        killer.join()
        time.sleep(0.5)
        log = nginx.access_log()
    return report(log, load_out, victim.address, killed_at[0], code)


def report(log: list[dict], load_out: Path, victim: str, killed_at: float, loadtest_code: int) -> dict:
    """What happened to every request, from nginx's access log and locust's own counts."""
    from datetime import datetime

    summary = json.loads((load_out / "summary.json").read_text())
    when = [datetime.fromisoformat(entry["time"]).timestamp() for entry in log]
    before = [e for e, t in zip(log, when) if t < killed_at]
    after = [e for e, t in zip(log, when) if t >= killed_at + 1]  # the second of the kill itself is excluded
    window = 6.0
    rate = lambda entries, start, end: len([t for t in entries if start <= t < end]) / (end - start)
    times = sorted(when)
    return {
        "loadtest_exit_code": loadtest_code,
        "locust_requests": summary["requests"],
        "locust_failures": summary["failures"],
        "proxy_requests": len(log),
        "proxy_statuses": sorted({e["status"] for e in log}),
        "retried_on_another_replica": sum(1 for e in log if "," in e["upstream"]),
        "victim_served_before_kill": sum(1 for e in before if e["upstream"].split(", ")[-1] == victim),
        "victim_served_after_kill": sum(1 for e in after if e["upstream"].split(", ")[-1] == victim),
        "requests_per_s_before_kill": round(rate(times, killed_at - window, killed_at), 2),
        "requests_per_s_after_kill": round(rate(times, killed_at + 1, killed_at + 1 + window), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ser_tools.replicas", description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=default_model_dir())
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--kill-after", type=float, default=15)
    parser.add_argument("--out", type=Path, default=BUILD_DIR / "failover")
    args = parser.parse_args(argv)
    import shutil

    shutil.rmtree(args.out, ignore_errors=True)
    result = run_failover(args.model_dir, args.out, args.replicas, args.users, args.seconds, args.kill_after)
    (args.out / "failover.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    lost = result["locust_failures"] or result["proxy_statuses"] != [200]
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
