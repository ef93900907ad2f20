"""`ser-serve soak`: a bounded steady load on a local server while worker memory is sampled.

Reports resident memory of the frontend and each worker over time (JSON and
a plot) and the growth between the start and the end of the run, so leaks
show up before production does. Exits 1 when a worker grew more than
``--max-growth-mb``.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from ser_serve.workspace import BUILD_DIR, default_model_dir
from ser_tools.clipmix import ClipMix, load_or_make_clips
from ser_tools.loadgen import run_closed_loop
from ser_tools.loadtest import start_local_server


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ser-serve soak", description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=default_model_dir())
    parser.add_argument("--seconds", type=float, default=300, help="how long the load runs")
    parser.add_argument("--users", type=int, default=2, help="concurrent closed-loop clients")
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between memory samples")
    parser.add_argument("--max-growth-mb", type=float, default=100.0, help="fail above this worker growth")
    parser.add_argument("--clip-cache", default=str(BUILD_DIR / "clips"))
    parser.add_argument("--out", type=Path, default=BUILD_DIR / "soak")
    return parser.parse_args(argv)


def role(process) -> str:
    command = " ".join(process.cmdline())
    if "java" in process.name():
        return "frontend"
    if "model_service_worker" in command:
        return f"worker-{process.pid}"
    return "launcher"


def run(args) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    clips = load_or_make_clips(ClipMix(), args.clip_cache)
    samples: dict[str, list[tuple[float, float]]] = {}
    with ExitStack() as stack:
        server = stack.enter_context(start_local_server(args.model_dir, "ser", stack))
        done = threading.Event()
        load = {}

        def drive():
            load["result"] = run_closed_loop(f"{server.inference_url}/predictions/ser",
                                             [(c.data, c.seconds) for c in clips], server.auth_headers(),
                                             args.users, args.max_requests, args.seconds)
            done.set()

        threading.Thread(target=drive, daemon=True).start()
        started = time.monotonic()
        print(f"soak: {args.users} users for {args.seconds:.0f} s; sampling memory every {args.interval:g} s", flush=True)
        while not done.wait(args.interval):
            now = time.monotonic() - started
            for process in server.running_processes():
                try:
                    samples.setdefault(role(process), []).append((now, process.memory_info().rss / 2**20))
                except Exception:  # a process that just exited
                    continue
            if int(now) % 30 == 0:
                print(f"  {now:5.0f} s: " + ", ".join(f"{k} {v[-1][1]:.0f} MB" for k, v in sorted(samples.items())),
                      flush=True)
    result = load["result"].summary()
    growth = {name: _growth(series) for name, series in samples.items()}
    report = {"seconds": args.seconds, "users": args.users, "load": result, "growth_mb": growth,
              "memory_mb": {k: [(round(t, 1), round(m, 1)) for t, m in v] for k, v in samples.items()}}
    (args.out / "soak.json").write_text(json.dumps(report, indent=2))
    _plot(samples, args.out / "soak.png")
    worst = max((g for name, g in growth.items() if name.startswith("worker")), default=0.0)
    print(f"{result['ok']} requests ok ({result['statuses']}), {result['requests_per_s']:.2f} req/s; memory growth "
          + ", ".join(f"{k} {v:+.1f} MB" for k, v in sorted(growth.items()))
          + f" -> {args.out / 'soak.json'}, {args.out / 'soak.png'}")
    failed = worst > args.max_growth_mb or result["ok"] < result["requests"]
    return 1 if failed else 0


def _growth(series) -> float:
    """Median RSS of the last fifth minus that of the second fifth (the first is warm-up)."""
    values = np.array([m for _, m in series])
    if len(values) < 5:
        return 0.0
    fifth = len(values) // 5
    return float(np.median(values[-fifth:]) - np.median(values[fifth : 2 * fifth]))


def _plot(samples, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name, series in sorted(samples.items()):
        if series:
            t, m = zip(*series)
            ax.plot(t, m, label=name)
    ax.set_xlabel("seconds")
    ax.set_ylabel("resident memory, MB")
    ax.set_title("ser-serve soak: memory under steady load")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
