"""`make bench`: model-only ceiling vs our served stack (TorchServe and Triton) vs two naive baselines, in one run.

All configurations see the same clips (a CREMA-D-like mix), the same
base-size checkpoint and the same machine, one after the other, so their
ratios are comparable even on a noisy host. Prints progress; bounded by
request counts and a time limit per stage. A last stage measures what each
engine adds per request at concurrency 1 with the tiny model, where the
model's own time is small: served p50 minus the in-process p50 of the same
clips (decode included in both).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from ser_serve.clients.triton import v2_request
from ser_serve.engines.torchserve.archive import build_archive
from ser_serve.engines.triton.server import start_on_free_ports as start_triton
from ser_serve.packaging import DEFAULT_MODEL_CONFIG
from ser_serve.audio import load_waveform
from ser_train.presets import make_preset_checkpoint
from ser_tools.clipmix import ClipMix, load_or_make_clips
from ser_tools.loadgen import run_closed_loop
from ser_tools.profiles import compare_profiles
from ser_serve.model.emotion_model import EmotionModel
from ser_serve.engines.torchserve.server import (DEFAULT_SERVER_CONFIG, TorchServe, read_properties,
                                                 start_on_free_ports as start_torchserve, with_free_ports,
                                                 write_properties)
from ser_serve.workspace import BUILD_DIR

BASELINE_HANDLERS = Path(__file__).resolve().parent / "baselines"


def served_configurations(sweep: bool) -> dict[str, dict]:
    """Model name -> (handler, model-config overrides, ser-section overrides, description)."""
    configurations = {
        "ser": dict(description="ours: exact length-aware batching (shipped defaults)"),
        "ref_b1": dict(description="baseline: batch size 1, per-request forward (model-card code)",
                       handler=BASELINE_HANDLERS / "reference_handler.py",
                       overrides={"batchSize": 1, "maxBatchDelay": 0}),
        "padded": dict(description="baseline: pad-to-longest batching",
                       handler=BASELINE_HANDLERS / "padded_handler.py"),
    }
    # Ours in each precision profile (guarded: a profile that fails its guard serves float32; the row says what ran).
    for profile in ("bfloat16", "int8", "openvino", "auto"):
        configurations[f"ser_{profile}"] = dict(description=f"ours, precision {profile}",
                                                ser={"precision": {"profile": profile}})
    if sweep:
        configurations.update({
            "ser_w2t1": dict(description="ours, 2 workers x 1 thread", overrides={"minWorkers": 2, "maxWorkers": 2},
                             ser={"torch_threads": 1}),
            "ser_b1": dict(description="ours, batchSize 1", overrides={"batchSize": 1, "maxBatchDelay": 0}),
            "ser_d5": dict(description="ours, maxBatchDelay 5 ms", overrides={"maxBatchDelay": 5}),
            "ser_d50": dict(description="ours, maxBatchDelay 50 ms", overrides={"maxBatchDelay": 50}),
        })
    return configurations


def model_only(checkpoint: Path, clips, batch_size: int, threads: int, log) -> dict:
    """In-process forward passes on pre-decoded clips: the ceiling no server can beat."""
    torch.set_num_threads(threads)
    model = EmotionModel(checkpoint, device="cpu")
    features = [model.features(load_waveform(clip.data)) for clip in clips]
    model.predict_proba(features[:2])  # warm-up
    audio = sum(clip.seconds for clip in clips)
    single = []
    for i, f in enumerate(features):
        started = time.perf_counter()
        model.predict_proba([f])
        single.append(time.perf_counter() - started)
    log(f"  model-only, one clip per forward: {audio / sum(single):.2f} audio-s/s")
    started = time.perf_counter()
    for i in range(0, len(features), batch_size):
        model.predict_proba(features[i : i + batch_size])
    batched = time.perf_counter() - started
    log(f"  model-only, exact batches of {batch_size}: {audio / batched:.2f} audio-s/s")
    return {
        "single_forward_s": single,
        "one_by_one": {"audio_s_per_s": audio / sum(single), "requests_per_s": len(clips) / sum(single)},
        "batched": {"audio_s_per_s": audio / batched, "requests_per_s": len(clips) / batched},
    }


def build_store(checkpoint: Path, store: Path, configurations: dict, workdir: Path) -> None:
    base_config = yaml.safe_load(DEFAULT_MODEL_CONFIG.read_text())
    for name, spec in configurations.items():
        config = {**base_config, **spec.get("overrides", {})}
        config["ser"] = {**base_config["ser"], **spec.get("ser", {})}
        config_path = workdir / f"{name}.yaml"
        config_path.write_text(yaml.safe_dump(config))
        build_archive(checkpoint, store, name, config_path, handler=spec.get("handler"))


def run(args) -> dict:
    def log(message):
        print(message, flush=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = Path(args.checkpoint)
    if not (checkpoint / "config.json").exists():
        log(f"making the base-size checkpoint (random init) in {checkpoint} ...")
        make_preset_checkpoint("base", checkpoint)
    weighted_checkpoint = Path(args.weighted_checkpoint)
    if not (weighted_checkpoint / "config.json").exists():
        log(f"making the base-size weighted-layer-sum checkpoint (random init) in {weighted_checkpoint} ...")
        make_preset_checkpoint("base", weighted_checkpoint, structure="wav2vec2-base-weighted")
    mix = ClipMix(count=args.clips, seed=args.seed)
    clips = load_or_make_clips(mix, args.cache_dir)
    audio = [c.seconds for c in clips]
    log(f"{len(clips)} clips, {sum(audio):.1f} s of audio, {min(audio):.2f}-{max(audio):.2f} s, mean {np.mean(audio):.2f} s")
    base_config = yaml.safe_load(DEFAULT_MODEL_CONFIG.read_text())
    batch_size, threads = base_config["batchSize"], base_config["ser"]["torch_threads"]

    log("1/3 model-only ceiling (in-process, no decoding, no server)")
    ceiling = model_only(checkpoint, clips, batch_size, threads, log)
    log("  the same with a weighted layer sum (superb/wav2vec2-base-superb-er's structure):")
    weighted = model_only(weighted_checkpoint, clips, batch_size, threads, log)
    log("  precision profiles, exact batches, interleaved rounds (unguarded: what the guard compares):")
    profiles = compare_profiles(checkpoint, [load_waveform(clip.data) for clip in clips], batch_size, args.profile_rounds, log)
    torch.set_num_threads(1)  # leave the cores to the server from here on

    configurations = served_configurations(args.sweep)
    if args.configurations:
        wanted = args.configurations.split(",") + ["ser"]  # ours in float32: every ratio's reference
        unknown = sorted(set(wanted) - set(configurations) - {"triton"})
        if unknown:
            raise SystemExit(f"unknown configurations {unknown}; known: {sorted(configurations) + ['triton']}")
        configurations = {name: spec for name, spec in configurations.items() if name in wanted}
    results = {}
    with tempfile.TemporaryDirectory(prefix="ser-bench-") as tmp:
        tmp = Path(tmp)
        log("2/3 served over HTTP: building archives ...")
        build_store(checkpoint, tmp / "store", configurations, tmp)
        config = write_properties(with_free_ports(read_properties(DEFAULT_SERVER_CONFIG)), tmp / "config.properties")
        models = ",".join(f"{name}={name}.mar" for name in configurations)
        with TorchServe(config, tmp / "store", tmp / "work", models=models) as server:
            for name in configurations:
                server.wait_ready(timeout=300, model=name)
            payloads = [(c.data, c.seconds) for c in clips]
            for name, spec in configurations.items():
                url = f"{server.inference_url}/predictions/{name}"
                log(f"  {name}: {spec['description']}")
                run_closed_loop(url, payloads[:4], server.auth_headers(), 2, 4, 60)  # warm-up
                loaded = run_closed_loop(url, payloads, server.auth_headers(), args.concurrency, len(payloads), args.stage_seconds)
                single = run_closed_loop(url, payloads, server.auth_headers(), 1, args.latency_requests, args.stage_seconds)
                results[name] = {"description": spec["description"], "loaded": loaded.summary(), "concurrency_1": single.summary()}
                if "precision" in spec.get("ser", {}):  # what the worker chose, from the model's description
                    results[name]["precision"] = server.describe(name).get("precision")
                s = results[name]["loaded"]
                log(f"    c={args.concurrency}: {s['audio_s_per_s']:.2f} audio-s/s, {s['requests_per_s']:.2f} req/s, "
                    f"p50 {s['p50_ms']:.0f} ms, p99 {s['p99_ms']:.0f} ms, statuses {s['statuses']}; "
                    f"c=1: p50 {results[name]['concurrency_1']['p50_ms']:.0f} ms")
        if not args.configurations or "triton" in args.configurations.split(","):
            log("  triton: ours on Triton (shipped defaults, float32)")
            results["triton"] = served_by_triton(checkpoint, tmp / "triton", clips, args)
            s = results["triton"]["loaded"]
            log(f"    c={args.concurrency}: {s['audio_s_per_s']:.2f} audio-s/s, {s['requests_per_s']:.2f} req/s, "
                f"p50 {s['p50_ms']:.0f} ms, p99 {s['p99_ms']:.0f} ms, statuses {s['statuses']}; "
                f"c=1: p50 {results['triton']['concurrency_1']['p50_ms']:.0f} ms")
        log("3/3 what each engine adds per request at concurrency 1 (tiny model)")
        overhead = engine_overhead(Path(args.tiny_checkpoint), clips, tmp / "overhead", args, log)
    report = summarise(ceiling, results, clips, args, weighted, profiles)
    report["engine_overhead_tiny"] = overhead
    write_reports(report, out)
    log(f"wrote {out / 'bench.md'}, bench.json, bench.png")
    print((out / "bench.md").read_text())
    return report


def served_by_triton(checkpoint: Path, workdir: Path, clips, args) -> dict:
    """The closed-loop stages against a Triton serving ``checkpoint`` with the shipped model-config."""
    payloads = [(c.data, c.seconds) for c in clips]
    triton = start_triton(checkpoint, workdir, timeline=False)  # clips only, as the TorchServe rows
    try:
        triton.wait_ready(timeout=300)
        url = f"{triton.http_url}/v2/models/ser/infer"
        run_closed_loop(url, payloads[:4], {}, 2, 4, 60, encode=v2_request)  # warm-up
        loaded = run_closed_loop(url, payloads, {}, args.concurrency, len(payloads), args.stage_seconds, encode=v2_request)
        single = run_closed_loop(url, payloads, {}, 1, args.latency_requests, args.stage_seconds, encode=v2_request)
    finally:
        triton.stop()
    return {"description": "ours on Triton 2.51 (Python backend, dynamic batching; shipped defaults)",
            "loaded": loaded.summary(), "concurrency_1": single.summary()}


def engine_overhead(tiny: Path, clips, workdir: Path, args, log) -> dict:
    """p50 at concurrency 1 of each engine minus the in-process p50 of the same clips, tiny model (ms)."""
    from ser_serve.classifier import EmotionClassifier

    if not (tiny / "config.json").exists():
        make_preset_checkpoint("tiny", tiny)
    payloads = [(c.data, c.seconds) for c in clips][: args.latency_requests]
    torch.set_num_threads(2)
    classifier = EmotionClassifier.from_pretrained(tiny, device="cpu")
    classifier.predict(payloads[0][0])  # warm-up
    times = []
    for data, _ in payloads * 2:
        started = time.perf_counter()
        classifier.predict(data)
        times.append(time.perf_counter() - started)
    torch.set_num_threads(1)
    in_process = float(np.median(times)) * 1000
    log(f"  in-process (decode + forward): p50 {in_process:.1f} ms")
    result = {"in_process_p50_ms": in_process}
    torchserve = start_torchserve(tiny, workdir / "torchserve", timeline=False)
    try:
        torchserve.wait_ready(timeout=300)
        url = f"{torchserve.inference_url}/predictions/ser"
        run_closed_loop(url, payloads[:4], torchserve.auth_headers(), 1, 4, 60)
        served = run_closed_loop(url, payloads * 2, torchserve.auth_headers(), 1, 2 * len(payloads), args.stage_seconds)
        result["torchserve_p50_ms"] = served.summary()["p50_ms"]
    finally:
        torchserve.stop()
    triton = start_triton(tiny, workdir / "triton", timeline=False)
    try:
        triton.wait_ready(timeout=300)
        url = f"{triton.http_url}/v2/models/ser/infer"
        run_closed_loop(url, payloads[:4], {}, 1, 4, 60, encode=v2_request)
        served = run_closed_loop(url, payloads * 2, {}, 1, 2 * len(payloads), args.stage_seconds, encode=v2_request)
        result["triton_p50_ms"] = served.summary()["p50_ms"]
    finally:
        triton.stop()
    for engine in ("torchserve", "triton"):
        result[f"{engine}_overhead_ms"] = result[f"{engine}_p50_ms"] - in_process
        log(f"  {engine}: p50 {result[f'{engine}_p50_ms']:.1f} ms, adds {result[f'{engine}_overhead_ms']:+.1f} ms")
    return result


def summarise(ceiling: dict, served: dict, clips, args, weighted: dict, profiles: dict) -> dict:
    best_ceiling = max(ceiling["batched"]["audio_s_per_s"], ceiling["one_by_one"]["audio_s_per_s"])
    single_p50 = float(np.median(ceiling["single_forward_s"][: args.latency_requests])) * 1000
    ours = served["ser"]
    report = {
        "machine": {"platform": platform.platform(), "cpus": __import__("os").cpu_count(), "torch": torch.__version__},
        "clips": {"count": len(clips), "audio_s": sum(c.seconds for c in clips),
                  "formats": sorted({c.format for c in clips})},
        "concurrency": args.concurrency,
        "model_only": {k: v for k, v in ceiling.items() if k != "single_forward_s"},
        "model_only_weighted_layer_sum": {k: v for k, v in weighted.items() if k != "single_forward_s"},
        "model_only_profiles": profiles,
        "single_forward_p50_ms": single_p50,
        "served": served,
        "ratios": {name: r["loaded"]["audio_s_per_s"] / best_ceiling for name, r in served.items()},
        "targets": targets(served, ours, best_ceiling, single_p50, weighted, ceiling),
    }
    return report


def targets(served: dict, ours: dict, best_ceiling: float, single_p50: float, weighted: dict, ceiling: dict) -> dict:
    """The issues' figures; one whose configurations did not run (``--configurations``) is left out."""
    def rate(name):
        return served[name]["loaded"]["audio_s_per_s"]

    figures = {
        "served_vs_ceiling": lambda: rate("ser") / best_ceiling,
        "served_vs_padded": lambda: rate("ser") / rate("padded"),
        "c1_p50_minus_single_forward_ms": lambda: ours["concurrency_1"]["p50_ms"] - single_p50,
        "weighted_vs_plain_batched": lambda: weighted["batched"]["audio_s_per_s"] / ceiling["batched"]["audio_s_per_s"],
        # The fast profile's targets (auto): 2x float32 served, 2x the stock handler, p50 1.5x lower.
        "auto_vs_float32_served": lambda: rate("ser_auto") / rate("ser"),
        "auto_vs_stock_handler": lambda: rate("ser_auto") / rate("ref_b1"),
        "float32_c1_p50_over_auto": lambda: ours["concurrency_1"]["p50_ms"] / served["ser_auto"]["concurrency_1"]["p50_ms"],
        "triton_vs_torchserve_served": lambda: rate("triton") / rate("ser"),
    }
    found = {}
    for name, figure in figures.items():
        try:
            found[name] = figure()
        except KeyError:
            continue
    return found


def write_reports(report: dict, out: Path) -> None:
    (out / "bench.json").write_text(json.dumps(report, indent=2))
    best = max(report["model_only"]["batched"]["audio_s_per_s"], report["model_only"]["one_by_one"]["audio_s_per_s"])
    c = report["concurrency"]
    lines = [
        f"Clips: {report['clips']['count']} ({report['clips']['audio_s']:.1f} s of audio, formats {', '.join(report['clips']['formats'])}); "
        f"base-size wav2vec2 (random init); {report['machine']['cpus']} CPUs; concurrency {c}.",
        "",
        "| configuration | audio-s/s | req/s | p50 ms | p95 ms | p99 ms | c=1 p50 ms | vs ceiling |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, label in (("batched", "model-only, exact batches (ceiling)"), ("one_by_one", "model-only, one clip per forward")):
        m = report["model_only"][key]
        lines.append(f"| {label} | {m['audio_s_per_s']:.2f} | {m['requests_per_s']:.2f} | | | | | {m['audio_s_per_s'] / best:.2f} |")
    m = report["model_only_weighted_layer_sum"]["batched"]
    lines.append(f"| model-only, exact batches, weighted layer sum | {m['audio_s_per_s']:.2f} | {m['requests_per_s']:.2f} "
                 f"| | | | | {m['audio_s_per_s'] / best:.2f} |")
    for name, p in report["model_only_profiles"]["profiles"].items():
        lines.append(f"| model-only, exact batches, {name} ({p['vs_float32']:.2f}x float32; max change "
                     f"{p['max_probability_change']:.1e}, agreement {p['argmax_agreement']:.2f}) | {p['audio_s_per_s']:.2f} "
                     f"| | | | | | {p['audio_s_per_s'] / best:.2f} |")
    for name, r in report["served"].items():
        s, one = r["loaded"], r["concurrency_1"]
        ran = f" (ran {r['precision']['profile']})" if r.get("precision") else ""
        lines.append(f"| {name}: {r['description']}{ran} | {s['audio_s_per_s']:.2f} | {s['requests_per_s']:.2f} | {s['p50_ms']:.0f} | "
                     f"{s['p95_ms']:.0f} | {s['p99_ms']:.0f} | {one['p50_ms']:.0f} | {report['ratios'][name]:.2f} |")
    t = report["targets"]
    lines.append("")
    sentences = {
        "served_vs_ceiling": lambda: f"served / model-only ceiling: **{t['served_vs_ceiling']:.2f}** (target >= 0.90)",
        "served_vs_padded": lambda: f"served / pad-to-longest: **{t['served_vs_padded']:.2f}x** (target >= 1.3x)",
        "c1_p50_minus_single_forward_ms": lambda: (
            f"p50 at concurrency 1 minus median single forward ({report['single_forward_p50_ms']:.0f} ms): "
            f"**{t['c1_p50_minus_single_forward_ms']:+.0f} ms** (target <= +20 ms)"),
        "weighted_vs_plain_batched": lambda: (
            f"weighted layer sum / plain, model-only exact batches: **{t['weighted_vs_plain_batched']:.2f}** (target >= 0.90)"),
        "auto_vs_float32_served": lambda: f"precision auto / float32, served: **{t['auto_vs_float32_served']:.2f}x** (target >= 2x)",
        "auto_vs_stock_handler": lambda: f"precision auto / stock per-request handler: **{t['auto_vs_stock_handler']:.2f}x** (target >= 2x)",
        "float32_c1_p50_over_auto": lambda: (
            f"float32 p50 at concurrency 1 / auto's: **{t['float32_c1_p50_over_auto']:.2f}** (target >= 1.5)"),
        "triton_vs_torchserve_served": lambda: f"Triton / TorchServe, served float32: **{t['triton_vs_torchserve_served']:.2f}x**",
    }
    lines += [f"- {sentence()}" for name, sentence in sentences.items() if name in t]
    o = report.get("engine_overhead_tiny")
    if o:
        lines.append(f"- per-request overhead at concurrency 1, tiny model (served p50 minus in-process p50 "
                     f"{o['in_process_p50_ms']:.1f} ms): TorchServe **{o['torchserve_overhead_ms']:+.1f} ms**, "
                     f"Triton **{o['triton_overhead_ms']:+.1f} ms**")
    (out / "bench.md").write_text("\n".join(lines) + "\n")
    plot(report, out / "bench.png")


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["served"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    throughput = [report["served"][n]["loaded"]["audio_s_per_s"] for n in names]
    left.barh(names, throughput, color="tab:blue")
    best = max(report["model_only"]["batched"]["audio_s_per_s"], report["model_only"]["one_by_one"]["audio_s_per_s"])
    left.axvline(best, color="black", linestyle="--", label="model-only ceiling")
    left.set_xlabel(f"audio seconds per second (concurrency {report['concurrency']})")
    left.invert_yaxis()
    left.legend(loc="lower right")
    for i, p in enumerate(("p50_ms", "p95_ms", "p99_ms")):
        right.barh(np.arange(len(names)) + (i - 1) * 0.27, [report["served"][n]["loaded"][p] for n in names],
                   height=0.27, label=p.replace("_ms", ""))
    right.set_yticks(np.arange(len(names)), names)
    right.invert_yaxis()
    right.set_xlabel("latency, ms")
    right.legend()
    fig.suptitle("ser-serve benchmark: base-size wav2vec2 on CPU")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ser-serve-bench", description=__doc__)
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--checkpoint", default=str(BUILD_DIR / "checkpoints" / "base"))
    parser.add_argument("--weighted-checkpoint", default=str(BUILD_DIR / "checkpoints" / "base-weighted"),
                        help="base size with use_weighted_layer_sum, made if absent")
    parser.add_argument("--tiny-checkpoint", default=str(BUILD_DIR / "checkpoints" / "tiny"),
                        help="the engine-overhead stage's model, made if absent")
    parser.add_argument("--clips", type=int, default=48, help="clips in the mix (each sent once per stage)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency-requests", type=int, default=16, help="requests at concurrency 1")
    parser.add_argument("--stage-seconds", type=float, default=180, help="time limit of each load stage")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=str(BUILD_DIR / "clips"), help="where generated clips are kept")
    parser.add_argument("--profile-rounds", type=int, default=3, help="interleaved rounds of the model-only profile rows")
    parser.add_argument("--sweep", action="store_true", help="also measure alternative worker/batch settings")
    parser.add_argument("--configurations", default="",
                        help="only these served rows, comma-separated (e.g. ser,triton: the two engines side by side)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
