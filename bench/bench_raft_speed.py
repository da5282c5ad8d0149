"""Speed and memory of the RAFT engine: onnxruntime against torch, batching, session creation, Yahtse.

    nice python -m bench.bench_raft_speed --weights .build/raft_run1/latest.pt
    nice python -m bench.bench_raft_speed --weights glacierflow/assets/models/raft/raft_small_glacier.onnx

``--weights`` is a training checkpoint (.pt: exported here to a temporary
ONNX file with ``--iters`` iterations, and also run in torch) or an exported
.onnx file (then the torch comparison is skipped). Every figure is printed
with a ratio against a baseline measured in the same process (torch for
onnxruntime, batch 1 for larger batches, the plugin's session options for
the defaults, horn_schunck for the whole pair), because this 2-core machine
may be shared (e.g. with a training run): ratios survive that, absolute
seconds do not. Each configuration is timed in ``--rounds`` interleaved
rounds and the fastest round is kept. The plugin's session options (one
intra-op thread per core, no spin-waiting) are compared with one thread and
with onnxruntime's default spinning threads.

The whole Yahtse pair (../shared/data/yahtse, 1698 x 1087 px, default tile
256 px, overlap 64 px, forward-backward check) runs through ``run_pair_job``
in a child process so its peak resident memory (``resource.getrusage``) is
the job's own, without torch.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from glacierflow.core.onnx_runtime import available_cores, session_options
from glacierflow.core.velocity.flow.raft_onnx import RaftOnnx

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "yahtse"
PAIR = ("LC80630182016200LGN00_B8_yahtse.TIF", "LC80630182016216LGN00_B8_yahtse.TIF")


def _peak_rss_mb() -> float:
    """Peak resident memory of this process, MB.

    Linux carries ``ru_maxrss`` across exec, so a child started by a large
    parent would report the parent's peak; VmHWM (the same peak, kept per
    address space) does not, so it is preferred where /proc has it.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux and BSD report KiB


def _tiles(count: int, size: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` pairs of (2, size, size) float32 smoothed-noise gradients, B moved (3, -2) px."""
    import cv2

    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(count):
        base = cv2.GaussianBlur(rng.standard_normal((size + 16, size + 16)).astype(np.float32), (0, 0), 1.5)
        gx, gy = cv2.Sobel(base, cv2.CV_32F, 1, 0) / 8, cv2.Sobel(base, cv2.CV_32F, 0, 1) / 8
        stack = np.stack([gx, gy]) / np.float32(np.std(gx))
        pairs.append((np.ascontiguousarray(stack[:, 8:-8, 8:-8]), np.ascontiguousarray(stack[:, 6:-10, 5:-11])))
    return pairs


def _fastest(runs: dict[str, Callable[[], None]], rounds: int) -> dict[str, float]:
    """Seconds of the fastest of ``rounds`` interleaved runs of each callable."""
    best = {name: float("inf") for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def _export_checkpoint(checkpoint: str, iters: int | None, folder: str) -> tuple[Any, str]:
    """(torch model, ONNX path) of a training checkpoint, exported with its card (iters None: the default)."""
    from training.raft.export import EXPORT_ITERATIONS, export_onnx, load_checkpoint, model_card

    iters = iters or EXPORT_ITERATIONS
    model, ckpt = load_checkpoint(checkpoint)
    path = os.path.join(folder, "bench_raft.onnx")
    training = {"checkpoint": os.path.basename(checkpoint), "steps": int(ckpt.get("step", 0))}
    export_onnx(model, path, iters, model_card(model, iters, training, {}))
    return model, path


def _session(path: str, mem_reuse: bool, threads: int, spinning: bool = False) -> Any:
    """A CPU session with the plugin's options but for the ones given."""
    import onnxruntime as ort

    options = session_options(ort, threads, spinning)
    options.enable_mem_reuse = mem_reuse
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def bench_sessions(path: str, rounds: int) -> None:
    """Session creation with the plugin's options against onnxruntime's default memory reuse."""
    cores = available_cores()
    times = _fastest({"plugin (mem reuse off)": lambda: _session(path, False, cores),
                      "mem reuse on": lambda: _session(path, True, cores)}, rounds)
    base = times["mem reuse on"]
    print("\n## Session creation (CPU)")
    for name, seconds in times.items():
        print(f"  {name:<26} {seconds:6.2f} s   x{seconds / base:5.2f} of mem-reuse-on")


def bench_tiles(engine: RaftOnnx, model: Any, sizes: list[int], batches: list[int], count: int,
                rounds: int) -> None:
    """Seconds per tile and per megapixel: onnxruntime (batches, threads) against torch."""
    cores = available_cores()
    variants = {"onnxruntime batch 1, 1 thread": _on_session(engine, _session(engine.model_path, False, 1)),
                "onnxruntime batch 1, spinning": _on_session(engine, _session(engine.model_path, False, cores, True))}
    for size in sizes:
        tiles = _tiles(count, size)
        engine.estimate_batch(tiles[:1])  # warm-up: first run allocates and picks kernels
        runs: dict[str, Callable[[], None]] = {}
        for batch in batches:
            runs[f"onnxruntime batch {batch}"] = _batched(engine.estimate_batch, tiles, batch)
        for name, variant in variants.items():
            variant.estimate_batch(tiles[:1])
            runs[name] = _batched(variant.estimate_batch, tiles, 1)
        if model is not None:
            runs["torch batch 1"] = _torch_runner(model, engine.card.iterations, tiles, cores)
        times = {name: seconds / count for name, seconds in _fastest(runs, rounds).items()}
        base = times.get("torch batch 1", times["onnxruntime batch 1"])
        base_name = "torch batch 1" if "torch batch 1" in times else "onnxruntime batch 1"
        mp = size * size / 1e6
        print(f"\n## {size} x {size} px tiles, {count} pairs, {engine.card.iterations} iterations; onnxruntime "
              f"with the plugin's options ({cores} threads, no spinning) unless said, torch {cores} threads")
        print(f"  {'configuration':<32} {'s/tile':>7} {'s/MP':>7} {'vs ' + base_name:>22} {'vs ort batch 1':>15}")
        for name, seconds in times.items():
            print(f"  {name:<32} {seconds:7.3f} {seconds / mp:7.2f} {seconds / base:22.2f} "
                  f"{seconds / times['onnxruntime batch 1']:15.2f}")


def _batched(run: Callable[[list], Any], tiles: list, batch: int) -> Callable[[], None]:
    def go() -> None:
        for start in range(0, len(tiles), batch):
            run(tiles[start:start + batch])
    return go


def _on_session(engine: RaftOnnx, session: Any) -> RaftOnnx:
    """A copy of ``engine`` (same card and padding) that runs on another session."""
    clone = copy.copy(engine)
    clone.session = session
    return clone


def _torch_runner(model: Any, iters: int, tiles: list, threads: int) -> Callable[[], None]:
    import torch

    from training.raft.export import FinalFlow
    from training.raft.raft import pad_to_multiple

    torch.set_num_threads(threads)
    wrapper = FinalFlow(model.eval(), iters).eval()

    def go() -> None:
        with torch.no_grad():
            for a, b in tiles:
                x1, _ = pad_to_multiple(torch.from_numpy(a)[None])
                x2, _ = pad_to_multiple(torch.from_numpy(b)[None])
                wrapper(x1, x2)
    return go


def yahtse_child(model_path: str, baseline: str, out: str) -> None:
    """In a fresh process: the whole pair with RAFT (time, peak RSS), then the baseline engine."""
    import cv2  # noqa: F401  the job's heavy modules, loaded first so that "before" counts them
    import onnxruntime  # noqa: F401
    from osgeo import gdal  # noqa: F401

    from glacierflow.core.velocity.pair import PairJob, run_pair_job

    before = _peak_rss_mb()
    figures: dict[str, Any] = {"rss_before_mb": before}
    for engine, params in (("raft", {"model_path": model_path}), (baseline, {})):
        started = time.perf_counter()
        result = run_pair_job(PairJob(str(DATA / PAIR[0]), str(DATA / PAIR[1]), os.path.join(out, f"{engine}.tif"),
                                      engine=engine, engine_params=params))
        figures[engine] = {"seconds": time.perf_counter() - started, "peak_rss_mb": _peak_rss_mb(),
                           "valid_fraction": result.valid_fraction,
                           "provider": result.metadata.get("ENGINE_PROVIDER", "-"),
                           "shape": [result.grid.width, result.grid.height]}
    print(json.dumps(figures))


def bench_yahtse(model_path: str, baseline: str) -> None:
    if not DATA.is_dir():
        print(f"\n## Yahtse pair: skipped, {DATA} is absent")
        return
    plugin_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository root
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [plugin_parent, os.environ.get("PYTHONPATH")])))
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run([sys.executable, "-m", f"{__package__}.bench_raft_speed", "--yahtse-child",
                               model_path, "--baseline", baseline, "--out", out],
                              env=env, check=True, capture_output=True, text=True)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    raft, base = figures["raft"], figures[baseline]
    width, height = raft["shape"]
    mp = width * height / 1e6
    print(f"\n## Yahtse pair, {width} x {height} px ({mp:.2f} MP), run_pair_job defaults (256 px tiles, "
          "64 px overlap, forward-backward check), child process")
    print(f"  raft ({raft['provider']}): {raft['seconds']:.1f} s ({raft['seconds'] / mp:.1f} s/MP, "
          f"x{raft['seconds'] / base['seconds']:.2f} of {baseline}), session creation included; "
          f"trusted {raft['valid_fraction'] * 100:.1f} %")
    print(f"  {baseline}: {base['seconds']:.1f} s ({base['seconds'] / mp:.1f} s/MP)")
    scene_mb = mp * 4  # one float32 scene-sized array, MB
    added = raft["peak_rss_mb"] - figures["rss_before_mb"]
    print(f"  peak RSS: {figures['rss_before_mb']:.0f} MB after importing numpy, GDAL, OpenCV and onnxruntime; "
          f"{raft['peak_rss_mb']:.0f} MB after the raft job (+{added:.0f} MB, x{added / scene_mb:.1f} of one "
          f"float32 scene array of {scene_mb:.1f} MB); {base['peak_rss_mb']:.0f} MB after {baseline}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", help="training checkpoint (.pt) or exported model (.onnx)")
    parser.add_argument("--iters", type=int, help="iterations when exporting a checkpoint (default: the exporter's)")
    parser.add_argument("--sizes", type=int, nargs="*", default=[256, 512], help="tile sides, px")
    parser.add_argument("--batches", type=int, nargs="*", default=[1, 2, 4, 8])
    parser.add_argument("--count", type=int, default=8, help="tile pairs per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the fastest is kept")
    parser.add_argument("--baseline", default="horn_schunck", help="engine the whole-pair time is compared with")
    parser.add_argument("--no-yahtse", action="store_true")
    parser.add_argument("--yahtse-child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.yahtse_child:
        yahtse_child(args.yahtse_child, args.baseline, args.out)
        return
    if not args.weights:
        parser.error("--weights is required")
    with tempfile.TemporaryDirectory() as folder:
        model, path = (_export_checkpoint(args.weights, args.iters, folder) if args.weights.endswith(".pt")
                       else (None, os.path.abspath(args.weights)))
        started = time.perf_counter()
        engine = RaftOnnx(path, provider="cpu")
        print(f"# RAFT speed: {args.weights}, {engine.summary()}, {available_cores()} cores, "
              f"first engine creation {time.perf_counter() - started:.2f} s")
        bench_sessions(path, args.rounds)
        bench_tiles(engine, model, args.sizes, sorted(set([1] + args.batches)), args.count, args.rounds)
        if not args.no_yahtse:
            bench_yahtse(path, args.baseline)


if __name__ == "__main__":
    main()
