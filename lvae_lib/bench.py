"""Speed benchmark: ``python -m lvae_lib bench``.

Measured side by side in one process, on random data of MNIST's shape (speed does not
depend on the pixel values):

* **peak**: the machine's fp32 matmul rate (a large square sgemm), the yardstick;
* **training step** of the 5-layer VAE and LVAE (batch 256): the plain
  :mod:`lvae_lib.reference` loop (DataLoader, ``torch.distributions``, default Adam)
  against the library's :func:`lvae_lib.train.train_step` (on-device data, fused Adam);
  with the matmul FLOPs of a step counted by :class:`torch.utils.flop_counter.FlopCounterMode`;
* **L_K evaluation** (:func:`lvae_lib.objectives.iw_bound`) of the 5-layer LVAE: images/s at
  K = 5000 and the projected time for the 10,000 MNIST test images;
* optionally (``--processes 2``) the throughput of several one-thread training processes at
  once, the way ``run --jobs`` spreads a sweep over the cores;
* the **step in each mode** (:func:`time_modes`): eager and compiled, in each precision, one model and a
  stack of M (M = 1, 4 on a CPU; 1, 4, 16 on a GPU), per model, with the ratio to today's eager fp32
  step measured in the same run, the compile time, and the projected hours of one paper-budget model.

Every row is written to a CSV (default ``results/bench/<device>.csv``) that the book reads.
"""
from __future__ import annotations

import copy
import multiprocessing as mp
import os
import statistics
import time
from pathlib import Path

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from .config import preset
from .model import LadderVAE
from .objectives import iw_bound
from .reference import ReferenceVAE, reference_epoch, reference_loader
from .train import GraphedStep, cpu_model, epoch_batches, make_optimizer, train_step, use_cuda_graphs

BATCH = 256
PAPER_STEPS = 2000 * -(-60000 // BATCH)  # training steps of one paper-budget MNIST model


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device, repeats: int = 1) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def sgemm_peak(device="cpu", n: int = 2048, repeats: int = 5) -> float:
    """Best fp32 matmul rate in GFLOP/s over ``repeats`` runs of an n x n x n product."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b  # warm-up
    reps = 8 if torch.device(device).type == "cpu" else 50
    best = min(_timed(lambda: [a @ b for _ in range(reps)], device) for _ in range(repeats))
    return 2 * n**3 * reps / best / 1e9


def step_flops(model: LadderVAE, x: torch.Tensor) -> int:
    """Matmul FLOPs of one forward + backward of the training loss on ``x``."""
    from .objectives import training_loss

    with FlopCounterMode(display=False) as fc:
        loss, _ = training_loss(model, x)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return fc.get_total_flops()


def time_training(variant: str, steps: int, device="cpu", repeats: int = 3, seed: int = 0) -> dict:
    """Seconds per step of the reference loop and of the library's step for a 5-layer ``variant``."""
    torch.manual_seed(seed)
    cfg, _ = preset(variant, 5)
    x = torch.rand(steps * BATCH, cfg.x_dim)
    lib = LadderVAE(cfg).to(device)
    ref = ReferenceVAE(cfg).to(device)
    ref.load_state_dict(lib.state_dict())
    flops = step_flops(lib, torch.bernoulli(x[:BATCH]).to(device))
    ref_opt = torch.optim.Adam(ref.parameters(), lr=1e-3)
    loader = reference_loader(x.to(device), BATCH)
    lib_opt = make_optimizer(lib, 1e-3)
    x_dev = x.to(device)

    def library_epoch():  # the loop of lvae_lib.train.train, without its bookkeeping
        lib.train()
        for _, xb in epoch_batches(x_dev, BATCH):
            train_step(lib, lib_opt, xb)

    graphed = GraphedStep(lib, lib_opt, BATCH) if use_cuda_graphs(device) else None

    def graphed_epoch():  # what lvae_lib.train.train runs on a GPU
        for _, xb in epoch_batches(x_dev, BATCH):
            graphed(xb, 1.0)

    reference_epoch(ref, ref_opt, loader, max_steps=3)  # warm-up
    library_epoch()
    t = {"reference_s": [], "library_s": [], "graph_s": []}
    for _ in range(repeats):  # interleaved, so that drifts in machine speed hit all alike
        t["reference_s"].append(_timed(lambda: reference_epoch(ref, ref_opt, loader), device) / steps)
        t["library_s"].append(_timed(library_epoch, device) / steps)
        if graphed is not None:
            t["graph_s"].append(_timed(graphed_epoch, device) / steps)
    return {"flops": flops, **{k: statistics.median(v) for k, v in t.items() if v}}


def modes(device) -> list[tuple[str, bool]]:
    """The (precision, compiled) pairs the benchmark times on ``device``, eager fp32 (today's step) first."""
    cuda = torch.device(device).type == "cuda"
    return [("fp32", False), ("fp32", True)] + ([("tf32", True)] if cuda else []) + [("bf16", False), ("bf16", True)]


def time_modes(variant: str, steps: int, sizes=(1, 4), device="cpu", repeats: int = 3, seed: int = 0,
               which=None) -> list[dict]:
    """Seconds per step of ``variant`` (5 layers, batch 256) for each (precision, compiled) of :func:`modes`
    and each stack size M in ``sizes`` (M = 1: :class:`lvae_lib.step.SingleStep`; more:
    :class:`lvae_lib.stacked.StackedStep`); with the compile time of the compiled ones. Each mode is timed
    on its own copy of the same models, so the modes are compared in one process, side by side."""
    from .config import TrainConfig
    from .stacked import StackedStep
    from .step import SingleStep, noise_shapes

    cfg, _ = preset(variant, 5)
    rows = []
    for m in sizes:
        torch.manual_seed(seed)
        models = [LadderVAE(cfg).to(device) for _ in range(m)]
        x = torch.bernoulli(torch.rand(m, BATCH, cfg.x_dim, device=device))
        eps = [torch.randn(m, *shape, device=device) for shape in noise_shapes(cfg, BATCH)]
        for prec, compiled in which or modes(device):
            tc = TrainConfig(batch_size=BATCH, precision=prec)
            ms = [copy.deepcopy(mod) for mod in models]
            step = (SingleStep(ms[0], make_optimizer(ms[0], 1e-3), tc, device, compiled) if m == 1
                    else StackedStep(ms, tc, device, compiled))
            t0 = time.perf_counter()
            step(x, eps, [1.0] * m)  # the first call compiles
            _sync(device)
            first = time.perf_counter() - t0

            def run(n=steps):
                for _ in range(n):
                    step(x, eps, [1.0] * m)

            run(3)  # warm-up
            sec = statistics.median(_timed(run, device) / steps for _ in range(repeats))
            rows.append({"M": m, "precision": prec, "compiled": compiled, "seconds": sec,
                         "compile_s": first if compiled else 0.0, "mode": getattr(step, "mode", "")})
    return rows


def _worker(args):
    variant, steps, threads, device = args
    torch.set_num_threads(threads)
    r = time_training(variant, steps, device, repeats=1)
    return r.get("graph_s", r["library_s"])


def time_concurrent(variant: str, steps: int, processes: int, device="cpu") -> float:
    """Aggregate training steps per second of ``processes`` one-thread processes running at once
    (on a GPU: sharing the one card, as ``run --jobs N --device cuda`` does)."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(processes) as pool:  # each process times its own steps, all running at the same time
        per_step = pool.map(_worker, [(variant, steps, 1, device)] * processes)
    return sum(1 / s for s in per_step)


def iw_flops(model: LadderVAE, x: torch.Tensor, **kw) -> tuple[float, float]:
    """Matmul FLOPs of L_K per (image, sample) (the top-down path and the decoder) and per image (the upward
    pass, once), counted by PyTorch's FLOP counter on ``x`` at two values of K."""
    def flops(kk):
        with FlopCounterMode(display=False) as fc:
            iw_bound(model, x, k=kk, progress=False, **kw)
        return fc.get_total_flops()

    f1, f2 = flops(10), flops(110)
    per_sample = (f2 - f1) / (len(x) * 100)
    return per_sample, (f1 - len(x) * 10 * per_sample) / len(x)


def time_iw_bound(k: int, images: int, device="cpu", seed: int = 0, **kw) -> dict:
    """Images/s of L_K for the 5-layer LVAE, and the matmul FLOPs per (image, sample)."""
    torch.manual_seed(seed)
    cfg, _ = preset("LVAE+BN+WU", 5)
    model = LadderVAE(cfg).to(device).eval()
    x = torch.bernoulli(torch.rand(images, cfg.x_dim)).to(device)
    iw_bound(model, x[:2], k=min(k, 200), progress=False, **kw)  # warm-up

    per_sample, per_image_up = iw_flops(model, x[:2], **kw)
    secs = _timed(lambda: iw_bound(model, x, k=k, progress=False, **kw), device)
    return {"images_per_s": images / secs, "flops": images * (k * per_sample + per_image_up), "seconds": secs}


def profile_step(variant: str = "LVAE+BN+WU", steps: int = 10, device="cpu", top: int = 15) -> pd.DataFrame:
    """Where a library training step spends its time: torch.profiler's top operators by self time."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    cfg, _ = preset(variant, 5)
    model = LadderVAE(cfg).to(device)
    opt = make_optimizer(model, 1e-3)
    xs = [torch.bernoulli(torch.rand(BATCH, cfg.x_dim)).to(device) for _ in range(steps)]
    train_step(model, opt, xs[0])
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.device(device).type == "cuda" else [])
    with profile(activities=acts) as prof:
        for x in xs:
            train_step(model, opt, x)
    gpu = torch.device(device).type == "cuda"
    rows = [{"op": e.key, "calls": e.count,
             "self_ms_per_step": (e.self_device_time_total if gpu else e.self_cpu_time_total) / 1e3 / steps}
            for e in prof.key_averages()]
    df = pd.DataFrame(rows).sort_values("self_ms_per_step", ascending=False)
    df["pct"] = 100 * df["self_ms_per_step"] / df["self_ms_per_step"].sum()
    return df.head(top).reset_index(drop=True)


def device_name(device) -> str:
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()}, {os.cpu_count()} cores"


def run_benchmark(device="cpu", steps: int = 40, repeats: int = 3, k: int = 5000, images: int = 20,
                  processes: int = 0, out: str | Path | None = None, variants=("VAE+BN+WU", "LVAE+BN+WU"),
                  profile: bool = False, which=None, sizes=None):
    """Run every measurement, print a table and write it as CSV; returns the DataFrame. ``which``: the
    (precision, compiled) pairs to time (default: every one of :func:`modes`); ``sizes``: the stack sizes M."""
    threads = torch.get_num_threads()
    peak = sgemm_peak(device)
    rows = [{"what": "sgemm peak", "model": "", "impl": "matmul 2048^3", "gflops": peak, "pct_peak": 100.0}]
    print(f"sgemm peak: {peak:.1f} GFLOP/s on {device_name(device)}, {threads} thread(s)", flush=True)
    for v in variants:
        r = time_training(v, steps, device, repeats)
        impls = [("reference", r["reference_s"]), ("library", r["library_s"])]
        if "graph_s" in r:
            impls.append(("library, CUDA graph", r["graph_s"]))
        for impl, s in impls:
            g = r["flops"] / s / 1e9
            rows.append({"what": "train step", "model": v, "impl": impl, "ms_per_step": 1e3 * s,
                         "epoch_s_60k": s * 60000 / BATCH, "gflops": g, "pct_peak": 100 * g / peak,
                         "speedup_vs_reference": r["reference_s"] / s})
            print(f"{v:11s} {impl:9s} {1e3 * s:7.1f} ms/step  {g:6.1f} GFLOP/s  {100 * g / peak:5.1f}% of peak"
                  f"  x{r['reference_s'] / s:.2f} vs reference", flush=True)
        if processes > 1:
            rate = time_concurrent(v, steps, processes, device)
            g = r["flops"] * rate / 1e9
            rows.append({"what": "train step", "model": v, "impl": f"library, {processes} x 1-thread processes",
                         "ms_per_step": 1e3 / rate, "epoch_s_60k": 60000 / BATCH / rate, "gflops": g,
                         "pct_peak": 100 * g / peak, "speedup_vs_reference": r["reference_s"] * rate})
            print(f"{v:11s} {processes} procs  {1e3 / rate:7.1f} ms/step (aggregate)  {g:6.1f} GFLOP/s  "
                  f"{100 * g / peak:5.1f}% of peak", flush=True)
        base = None
        for t in time_modes(v, steps, sizes or ((1, 4) if torch.device(device).type == "cpu" else (1, 4, 16)),
                            device, repeats, which=which):
            m, sec = t["M"], t["seconds"]
            if m == 1 and t["precision"] == "fp32" and not t["compiled"]:
                base = sec  # today's fp32 step, measured in this run: the yardstick of the others
            g = r["flops"] * m / sec / 1e9
            impl = f"{'compiled' if t['compiled'] else 'eager'} {t['precision']}" + (f", stack of {m}" if m > 1 else "")
            rows.append({"what": "train step", "model": v, "impl": impl, "M": m, "precision": t["precision"],
                         "compiled": t["compiled"], "ms_per_step": 1e3 * sec / m, "epoch_s_60k": sec / m * 60000 / BATCH,
                         "gflops": g, "pct_peak": 100 * g / peak, "speedup_vs_reference": r["reference_s"] * m / sec,
                         "speedup_vs_fp32_step": base * m / sec if base else float("nan"),
                         "paper_model_hours": sec / m * PAPER_STEPS / 3600, "compile_s": t["compile_s"]})
            print(f"{v:11s} {impl:24s} {1e3 * sec / m:7.1f} ms/step per model  {g:6.1f} GFLOP/s  x{base * m / sec:.2f} "
                  f"vs fp32 step  {sec / m * PAPER_STEPS / 3600:5.2f} h a paper model"
                  + (f"  (compile {t['compile_s']:.0f} s)" if t["compiled"] else ""), flush=True)
    e = time_iw_bound(k, images, device)
    g = e["flops"] / e["seconds"] / 1e9
    rows.append({"what": f"L_{k}", "model": "LVAE+BN+WU", "impl": "library", "images_per_s": e["images_per_s"],
                 "mnist_test_minutes": 10000 / e["images_per_s"] / 60, "gflops": g, "pct_peak": 100 * g / peak})
    print(f"L_{k}: {e['images_per_s']:.2f} images/s -> {10000 / e['images_per_s'] / 60:.1f} min for the 10k MNIST "
          f"test images; {g:.1f} GFLOP/s, {100 * g / peak:.1f}% of peak", flush=True)
    df = pd.DataFrame(rows)
    df.insert(0, "device", device_name(device))
    df.insert(1, "threads", threads)
    df["torch"] = torch.__version__
    df["date"] = time.strftime("%Y-%m-%d")
    if out:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(out, index=False, float_format="%.4g")
        print(f"wrote {out}")
    if profile:
        prof = profile_step(device=device)
        print("\nwhere a 5-layer LVAE training step spends its time (torch.profiler, self time):")
        print(prof.round(3).to_string(index=False))
        if out:
            prof.to_csv(out.with_name(out.stem + "-profile.csv"), index=False, float_format="%.4g")
    return df


def modes_table(results_dir=None, device: str = "cpu") -> pd.DataFrame:
    """The step-mode rows of ``results/bench/<device>.csv`` as the book shows them: per model and mode, ms a
    step per model, the ratio to the eager fp32 step of the same run, GFLOP/s, hours of one paper-budget
    model, and the compile time."""
    from .experiments import DEFAULT_RESULTS

    f = Path(results_dir or DEFAULT_RESULTS) / "bench" / f"{device}.csv"
    if not f.exists():
        return pd.DataFrame()
    df = pd.read_csv(f)
    if "precision" not in df.columns:
        return pd.DataFrame()
    df = df[df["precision"].notna()]
    out = pd.DataFrame({"model": df["model"], "step": df["impl"], "ms a step (per model)": df["ms_per_step"].round(1),
                        "× eager fp32": df["speedup_vs_fp32_step"].round(2), "GFLOP/s": df["gflops"].round(0).astype(int),
                        "% of peak": df["pct_peak"].round(1),
                        "h a paper model": df["paper_model_hours"].round(1),
                        "compile s": df["compile_s"].round(0).astype(int)})
    return out.reset_index(drop=True)


# ----------------------------------------------------------------------------- readers of the bench and the run times
def bench_table(results_dir=None) -> pd.DataFrame:
    """The rows written by ``python -m lvae_lib bench`` (``results/bench/*.csv``), one table."""
    from .experiments import DEFAULT_RESULTS

    files = [f for f in sorted((Path(results_dir or DEFAULT_RESULTS) / "bench").glob("*.csv"))
             if not f.stem.endswith("-profile")]
    if not files:
        return pd.DataFrame()
    cols = {"device": "device", "what": "what", "model": "model", "impl": "how", "ms_per_step": "ms a step",
            "images_per_s": "images/s", "gflops": "GFLOP/s", "pct_peak": "% of peak",
            "speedup_vs_reference": "× reference"}
    df = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    if "precision" in df.columns:  # the step modes have a table of their own (bench.modes_table)
        df = df[df["precision"].isna()]
    df = df[[c for c in cols if c in df.columns]].rename(columns=cols)
    df["device"] = df["device"].str.replace(" 80GB HBM3", "", regex=False)  # the column stays narrow
    return df.round(1).reset_index(drop=True)


def bench_profile(results_dir=None, device: str = "cpu") -> pd.DataFrame:
    """The top operators of a training step written by ``bench --profile`` (``results/bench/<device>-profile.csv``)."""
    from .experiments import DEFAULT_RESULTS

    f = Path(results_dir or DEFAULT_RESULTS) / "bench" / f"{device}-profile.csv"
    return pd.read_csv(f).round(3) if f.exists() else pd.DataFrame()


def run_times(df, smoke: bool = False) -> pd.DataFrame:
    """Measured training time of each record: budget, model, epochs, minutes, seconds per epoch, hardware
    (``smoke`` records, seconds each, are left out unless asked for)."""
    if len(df) and not smoke:
        df = df[df["budget"] != "smoke"]
    if not len(df):
        return pd.DataFrame()
    out = df.assign(model=df["variant"] + "-L" + df["layers"].astype(str) + df["finetune"].map(lambda f: f" {f}" if f else ""),
                    minutes=(df["train_seconds"] / 60).round(1),
                    s_per_epoch=(df["train_seconds"] / df["epochs"]).round(2))
    out = out[["budget", "dataset_name", "model", "seed", "epochs", "minutes", "s_per_epoch", "device", "threads"]]
    return out.rename(columns={"dataset_name": "dataset", "s_per_epoch": "s an epoch"}).reset_index(drop=True)


def budget_totals(df) -> pd.DataFrame:
    """Total measured training hours per budget and dataset, and the number of records behind them.

    A fine-tuned record's training time includes its base model's; where the base is a row of ``df``
    too, it is counted once."""
    if not len(df):
        return pd.DataFrame()
    ident = ["budget", "dataset", "variant", "layers", "seed"]
    base = df[df["finetune"] == ""].set_index(ident)["train_seconds"]
    shared = [base.get(tuple(r[c] for c in ident), 0.0) if r["finetune"] else 0.0 for _, r in df.iterrows()]
    df = df.assign(train_seconds=df["train_seconds"] - shared)
    g = df.groupby(["budget", "dataset_name"]).agg(records=("key", "size"), hours=("train_seconds", "sum"))
    g["hours"] = (g["hours"] / 3600).round(2)
    return g.reset_index()
