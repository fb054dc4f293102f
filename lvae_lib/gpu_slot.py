"""A short GPU lease turned into paper-budget records: ``python3 -m lvae_lib gpu-slot --out DIR``.

Made for a machine that is lent for minutes, has no network and no install step, and returns at most a
few files (:data:`MAX_FILES` of at most :data:`MAX_FILE` bytes, :data:`MAX_TOTAL` in all, at most two
folders down). It runs from the tree root on the machine's own ``python3``, reads MNIST from the folder
``gpu-data/`` carried with the tree (made here by ``make gpu-data``), starts from the committed
``results/`` and, within ``--deadline`` seconds:

1. **checks and measures**: an environment line; each step mode (eager or graphed, compiled; fp32) against
   the eager step on three identical steps; its time per model at M = 1, 4, 16 (:func:`lvae_lib.bench.time_modes`);
   the fastest mode that agreed is used (:func:`measure`);
2. **plans** the missing paper-budget MNIST runs in the order of :data:`ORDER`, stacked by shape
   (:func:`lvae_lib.sweep.stack_groups`), each with its projected minutes, and prints the plan (:func:`plan`);
3. **trains** each stack until done or until the deadline (checkpoints kept), **evaluates** the finished
   ones (L_5000 in large GPU chunks) and writes ordinary records;
4. **packs** into ``--out``: the log and the bench CSV at once, each record as soon as it is written (a
   tar of its folder), and at the end the checkpoints of unfinished runs in pieces (:func:`pack`).

``python -m lvae_lib gpu-unpack DIR`` puts the records into ``results/`` (checked against their
checksums) and the checkpoints where ``run`` resumes them (:func:`unpack`). ``make rehearse-gpu`` runs
the same command here, at the smoke budget, in a Python 3.12 venv with torch 2.11 and only the GPU
machine's packages, with the network cut, and checks what comes back against the limits.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import sys
import tarfile
import time
from pathlib import Path

from . import experiments as E

MAX_FILES, MAX_FILE, MAX_TOTAL = 8, 15 * 2**20, 60 * 2**20  # the lease's 8 files, 16 MiB each, 64 MiB: a margin
DATA_DIR = E.ROOT / "gpu-data"  # MNIST (and the commit) carried with the tree; git-ignored
ORDER = (  # what the paper budget still misses, most needed first
    [E.Run("mnist", v, 5) for v in ("VAE+BN", "VAE")]  # Fig. 2 complete
    + [E.Run("mnist", v, 5, seed=s) for s in (1, 2) for v in ("LVAE+BN+WU", "VAE+BN+WU")]  # the central pair's seeds
    + E.FIGURES["fig3"]  # the rest of the Fig. 3 grid
)
EVAL_MARGIN = 1.3  # a record's evaluation is planned at this many times its measured estimate
MAX_ADVANCE = 3  # unfinished runs trained for their checkpoints: about 19 MB each gzipped, three fit the return
PACK_S = 30  # seconds kept at the end for packing the checkpoints
CHECKS_SHARE = 0.3  # at most this share of the slot goes to the weight checks of committed records
ELSEWHERE = "elsewhere.json"  # in gpu-data/: {key: epoch} of runs training elsewhere (gpu-data --work-dir)


def say(*parts) -> None:
    print(time.strftime("%H:%M:%S"), *parts, flush=True)


def environment(device: str) -> str:
    import torch

    from .train import device_label, git_commit

    return (f"{device_label(device)}, torch {torch.__version__}, python {sys.version.split()[0]}, "
            f"commit {git_commit()}, {os.cpu_count()} cores")


def measure(device: str, sizes=(1, 2, 4, 16), steps: int = 20, budget_s: float = 90,
            compile_m: int = 2) -> tuple[dict, list[dict]]:
    """Time the eager fp32 step at each stack size M in ``sizes``; then, if there is time left of
    ``budget_s``, compile the step at M = ``compile_m`` (the size the slot trains at: at most
    :data:`MAX_ADVANCE` checkpoints come back), check three of its steps against the eager one's
    (same models, batches and noise) and time it. Returns, per measured M, the fastest fp32 mode that agreed
    (``{"compiled": {M: bool}, "per_model_s": {M: s}}``: on an H200 the graphed single step beat every stack,
    so each size keeps its own measurement, never one scaled from another's) and every timing row (for the
    bench CSV)."""
    import copy

    import torch

    from .bench import BATCH, _sync, time_modes
    from .config import TrainConfig, preset
    from .model import LadderVAE
    from .stacked import StackedStep
    from .step import noise_shapes

    t0 = time.time()
    rows = time_modes("LVAE+BN+WU", steps, sizes, device, repeats=1, which=[("fp32", False)])
    eager = {r["M"]: r["seconds"] / r["M"] for r in rows}
    for m, s in eager.items():
        say(f"  M={m:<2d} eager{' (graphed)' if device != 'cpu' and m == 1 else ''} fp32: {1e3 * s:.2f} ms a step per model")
    pick = {"compiled": {m: False for m in eager}, "per_model_s": dict(eager)}
    if device != "cpu":  # for the bench alone (training stays fp32): are TF32 and bf16 faster at all?
        try:
            more = time_modes("LVAE+BN+WU", steps, (1, max(sizes)), device, repeats=1, which=[("tf32", False), ("bf16", False)])
            rows += more
            for r in more:
                say(f"  M={r['M']:<2d} eager {r['precision']}: {1e3 * r['seconds'] / r['M']:.2f} ms a step per model")
        except Exception as e:  # noqa: BLE001 - a bench row is not worth the slot
            say(f"  (tf32/bf16 timing failed: {type(e).__name__}: {str(e)[:160]})")
    if time.time() - t0 > budget_s / 3:
        say(f"no time left of the {budget_s:.0f} s for checking: training with the eager step")
        return pick, rows
    m = compile_m if compile_m in eager else max(sizes)
    cfg, _ = preset("LVAE+BN+WU", 5)
    torch.manual_seed(0)
    models = [LadderVAE(cfg).to(device) for _ in range(m)]
    x = torch.bernoulli(torch.rand(m, BATCH, cfg.x_dim, device=device))
    eps = [torch.randn(m, *s, device=device) for s in noise_shapes(cfg, BATCH)]
    betas = [1.0] * m
    ref = StackedStep(copy.deepcopy(models), TrainConfig(batch_size=BATCH), device, False)
    comp = StackedStep(copy.deepcopy(models), TrainConfig(batch_size=BATCH), device, True)
    t1 = time.time()
    same = []
    try:
        for _ in range(3):
            same.append(torch.allclose(comp(x, eps, betas)[0], ref(x, eps, betas)[0], rtol=1e-4, atol=1e-3))
    except Exception as e:  # noqa: BLE001 - a failure after the first call: the eager step trains
        say(f"the compiled step failed ({type(e).__name__}: {str(e).splitlines()[0][:200]})")
        same.append(False)
    compile_s = time.time() - t1
    ok = comp._grads.ok and all(same)
    say(f"compiled step at M={m} against eager, 3 steps: {'agrees' if ok else 'DISAGREES or failed'} "
        f"(compiling took {compile_s:.0f} s)")
    if not ok:
        return pick, rows
    _sync(device)
    t2 = time.perf_counter()
    for _ in range(steps):
        comp(x, eps, betas)
    _sync(device)
    sec = (time.perf_counter() - t2) / steps
    rows.append({"M": m, "precision": "fp32", "compiled": True, "seconds": sec, "compile_s": compile_s, "mode": "compiled"})
    say(f"  M={m:<2d} compiled fp32: {1e3 * sec / m:.2f} ms a step per model")
    if sec / m < eager[m]:
        pick["compiled"][m], pick["per_model_s"][m] = True, sec / m
    best = min(pick["per_model_s"], key=pick["per_model_s"].get)
    say(f"fastest per model: M={best}, {'compiled' if pick['compiled'][best] else 'eager'} fp32, "
        f"{1e3 * pick['per_model_s'][best]:.2f} ms a step")
    return pick, rows


def _near(per_model: dict, m: int):
    """The value measured at the stack size nearest ``m``."""
    return per_model[min(per_model, key=lambda k: abs(k - m))]


def _step_s(per_model_s: dict, m: int) -> float:
    """Seconds a step of a stack of ``m`` takes, from the measured per-model times (nearest measured M)."""
    return _near(per_model_s, m) * m


def plan(budget: E.Budget, store, per_model_s: dict, work_dir, seconds: float, eval_s: float, elsewhere=()):
    """The stacks to train, in :data:`ORDER`, each as ``(runs, epochs_left, minutes, fits)``: those that fit,
    in order, into ``seconds`` (one after another) first, then the others (trained for their checkpoints, at
    most :data:`MAX_ADVANCE` runs a stack). Runs whose keys are in ``elsewhere`` (training on another
    machine, further on than a slot would bring them) are left out."""
    from .sweep import stack_groups
    from .train import checkpoint_path, load_checkpoint

    todo = [r for r in dict.fromkeys(ORDER) if not store.complete(r, r.key(budget)) and r.key(budget) not in elsewhere]
    out, used = [], 0.0
    groups = []
    for group in stack_groups(todo, budget):  # a stack only where it is cheaper per model than one at a time
        single = 1 in per_model_s and per_model_s[1] <= _near(per_model_s, len(group))
        groups += [[r] for r in group] if single else [group]
    for group in groups:
        done = [load_checkpoint(p)["epoch"] if (p := checkpoint_path(E.run_dir(work_dir, budget, r))).exists() else 0
                for r in group]
        # a stack resumes from one epoch: the runs at the first one's epoch stack, the others wait
        group = [r for r, d in zip(group, done) if d == done[0]]
        left = budget.epochs(group[0].dataset) - done[0]
        steps = -(-(budget.train_subset or 60000) // 256)
        secs = left * steps * _step_s(per_model_s, len(group)) + eval_s * EVAL_MARGIN * len(group)
        fits = used + secs <= seconds
        used += secs if fits else 0.0
        if not fits and len(group) > MAX_ADVANCE:
            group = group[:MAX_ADVANCE]
            secs = left * steps * _step_s(per_model_s, len(group))
        out.append((group, left, secs / 60, fits))
    return sorted(out, key=lambda g: not g[3])


def run_slot(out: Path, budget: str = "paper", device: str = "cuda", deadline_s: float = 560,
             results_dir=None, work_dir=None, data_root=None, sizes=(1, 2, 4, 16)) -> int:
    """The whole slot (module docstring); returns 0 when it ran to its end, finished or not."""
    import pandas as pd
    import torch

    from . import results
    from .data import train_data
    from .runner import check_records, records_to_check, run_one
    from .stacked import train_stacked

    t_end = time.time() + deadline_s
    out.mkdir(parents=True, exist_ok=True)
    data_root = data_root or (DATA_DIR if DATA_DIR.exists() else None)
    b = E.get_budget(budget)
    results_dir = Path(results_dir or E.DEFAULT_RESULTS)
    work_dir = Path(work_dir or (out.parent / "gpu-runs"))
    if (DATA_DIR / "commit.txt").exists() and "LVAE_GIT_COMMIT" not in os.environ:
        os.environ["LVAE_GIT_COMMIT"] = (DATA_DIR / "commit.txt").read_text().strip()
    say("environment:", environment(device))
    store = results.Store(results_dir, b.name)
    before = {p.parent for p in store.root.rglob("record.json")} if store.root.exists() else set()
    try:
        chosen, rows = measure(device, sizes)
    except Exception as e:  # noqa: BLE001 - no bench, but the slot still trains (eagerly, planned from a guess)
        say(f"measuring failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); planning with 3 ms a step")
        chosen, rows = {"compiled": {1: False}, "per_model_s": {1: 0.003}}, []
    pd.DataFrame(rows).assign(device=environment(device)).to_csv(out / "bench.csv", index=False)
    data = train_data("mnist", data_root)
    eval_s = _eval_seconds(device, b)
    # the committed records' weight checks (L_K with batch norm recomputed, L_20000 on 1,000 images): about
    # 1.5 evaluations each; within CHECKS_SHARE of the slot, since a CPU takes over an hour a record for them
    check_until = time.time() + CHECKS_SHARE * (t_end - time.time())
    n_check = len(records_to_check(b.name, results_dir))
    if n_check:
        say(f"weight checks of {n_check} committed record(s) (about {1.6 * eval_s:.0f} s each, "
            f"within {CHECKS_SHARE:.0%} of the slot)")
        try:
            check_records(b.name, results_dir, device, data_root, progress=False, log=lambda m: say(" ", m),
                          time_left=lambda: check_until - time.time() - 1.6 * eval_s)
        except Exception as e:  # noqa: BLE001 - the checks are not worth the slot
            say(f"the weight checks failed ({type(e).__name__}: {str(e)[:200]})")
        if store.checks_path.exists():
            shutil.copyfile(store.checks_path, out / results.CHECKS)
    elsewhere = _elsewhere(b)
    groups = plan(b, store, chosen["per_model_s"], work_dir, t_end - time.time() - PACK_S, eval_s, elsewhere)
    say(f"plan ({(t_end - time.time()):.0f} s left, L_{b.eval_k} about {eval_s:.0f} s a record"
        + (f"; {len(elsewhere)} run(s) left to the machine they train on" if elsewhere else "") + "):")
    for g, left, minutes, fits in groups:
        say(f"  {'finish ' if fits else 'advance'} {', '.join(f'{r.label} s{r.seed}' for r in g)}: "
            f"{left} epochs, about {minutes:.1f} min")
    packed = 0
    for g, _, _, fits in groups:
        if time.time() > t_end - PACK_S - 10:
            break
        mcfg, _ = g[0].configs(b)
        room = eval_s * EVAL_MARGIN * len(g) + 20 if fits else PACK_S
        # compiled only where the run is long enough to repay it (step.choose): never at the smoke budget
        args = (mcfg, [r.configs(b)[1] for r in g], data, [E.run_dir(work_dir, b, r) for r in g])
        try:
            train_stacked(*args, device=device, progress=False, compile=None if _near(chosen["compiled"], len(g)) else False,
                          deadline=t_end - room)
        except Exception as e:  # noqa: BLE001 - the compiled step failed late: resume from the checkpoints, eagerly
            say(f"training failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); resuming with the eager step")
            try:
                train_stacked(*args, device=device, progress=False, compile=False, deadline=t_end - room)
            except Exception as e2:  # noqa: BLE001 - keep what is there and pack it
                say(f"training failed again ({type(e2).__name__}: {str(e2).splitlines()[0][:200]})")
        for r in g:
            if time.time() > t_end - eval_s * EVAL_MARGIN - 20:
                break
            ck_path = E.run_dir(work_dir, b, r) / "checkpoint.pt"
            ck = torch.load(ck_path, map_location="cpu", weights_only=True) if ck_path.exists() else {"epoch": 0}
            if ck["epoch"] >= b.epochs(r.dataset):
                try:
                    rec = run_one(r, b, results_dir, work_dir, device, progress=False, data_root=data_root)
                except Exception as e:  # noqa: BLE001 - its checkpoint is packed instead
                    say(f"evaluating {r.label} seed {r.seed} failed ({type(e).__name__}: {str(e)[:200]}); its checkpoint is packed")
                    continue
                say(f"record {r.label} seed {r.seed}: test L_1 {rec.summary.test_L1:.2f}, L_{b.eval_k} {rec.summary.test_LK:.2f}")
                packed += _pack_record(out, Path(rec.path), packed)
    new = {p.parent for p in store.root.rglob("record.json")} - before
    say(f"{len(new)} new record(s); packing the checkpoints of unfinished runs")
    pack_checkpoints(out, work_dir, b, results_dir)
    say("done; files in", out, ":", ", ".join(sorted(p.name for p in out.iterdir())))
    return 0


# the H200's datasheet rates (dense), for the bench's % of peak: the slot does not measure them
PEAK_TFLOPS = {"fp32": 67.0, "tf32": 495.0, "bf16": 990.0}


def bench_rows(slot_bench, flops_per_step: float) -> "pd.DataFrame":
    """A slot's ``bench.csv`` (M, precision, compiled, seconds, compile_s, mode, device) as rows of the bench's
    own table (``results/bench/*.csv``): ms a step per model, GFLOP/s, % of the datasheet peak of its precision,
    ratio to the single fp32 step, hours of one paper-budget model. ``flops_per_step``: one model's step."""
    import pandas as pd

    from .bench import PAPER_STEPS

    df = pd.read_csv(slot_bench)
    base = df[(df.M == 1) & (df.precision == "fp32") & ~df.compiled.astype(bool)].seconds
    base = float(base.iloc[0]) if len(base) else float("nan")
    per = df.seconds / df.M
    gflops = flops_per_step / per / 1e9
    return pd.DataFrame({
        "device": df.device.str.split(",").str[0], "threads": 1, "what": "train step", "model": "LVAE+BN+WU",
        "impl": [f"{'compiled' if c else m} {p}" + (f", stack of {k}" if k > 1 else "")
                 for c, m, p, k in zip(df.compiled.astype(bool), df["mode"], df.precision, df.M)],
        "gflops": gflops, "pct_peak": [100 * g / (PEAK_TFLOPS[p] * 1e3) for g, p in zip(gflops, df.precision)],
        "ms_per_step": 1e3 * per, "epoch_s_60k": per * 60000 / 256, "M": df.M, "precision": df.precision,
        "compiled": df.compiled.astype(bool), "speedup_vs_fp32_step": base / per,
        "paper_model_hours": per * PAPER_STEPS / 3600, "compile_s": df.compile_s,
        "torch": df.device.str.extract(r"torch ([^,]+)")[0], "date": time.strftime("%Y-%m-%d")})


def _elsewhere(b: E.Budget) -> dict:
    """``{key: epoch}`` of the runs training on another machine (:func:`prepare`'s ``elsewhere.json``)."""
    p = DATA_DIR / ELSEWHERE
    return json.loads(p.read_text()).get(b.name, {}) if p.exists() else {}


def _eval_seconds(device: str, b: E.Budget) -> float:
    """A record's evaluation (L_K, L_1, KL, PCA) measured on a few images, scaled to the test set."""
    import torch

    from .config import preset
    from .model import LadderVAE
    from .objectives import iw_bound

    cfg, _ = preset("LVAE+BN+WU", 5)
    model = LadderVAE(cfg).to(device).eval()
    n = 200 if device != "cpu" else 5
    x = torch.bernoulli(torch.rand(n, cfg.x_dim, device=device))
    iw_bound(model, x[:2], k=10, progress=False)
    t = time.perf_counter()
    iw_bound(model, x, k=b.eval_k, batch_size=100, progress=False)
    if device != "cpu":
        torch.cuda.synchronize()
    test = b.test_subset or 10000
    return (time.perf_counter() - t) * test / n + 10


def _files(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.is_file()]


def _room(out: Path, size: int) -> bool:
    files = _files(out)
    return len(files) < MAX_FILES and size <= MAX_FILE and sum(p.stat().st_size for p in files) + size <= MAX_TOTAL


def _pack_record(out: Path, folder: Path, n: int) -> int:
    """``folder`` as ``record-<label>-<key>.tar`` in ``out`` if the limits allow; returns 1 if packed."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(folder, arcname=f"{folder.parent.name}/{folder.name}")
    name = out / f"record-{_safe(folder.name)}.tar"
    if not _room(out, len(buf.getvalue())):
        say(f"no room left for {name.name} ({len(buf.getvalue()) / 2**20:.1f} MiB): it stays behind")
        return 0
    tmp = name.with_suffix(".part")
    tmp.write_bytes(buf.getvalue())
    tmp.rename(name)  # a deadline kill leaves a whole tar or none
    return 1


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def pack_checkpoints(out: Path, work_dir: Path, b: E.Budget, results_dir=None) -> None:
    """The checkpoints of runs without a record (unfinished, or trained but not yet evaluated), the most
    trained first, each gzipped and cut into pieces ``ckpt-<key>.gz.<i>`` while the limits allow."""
    from .train import load_checkpoint

    root = Path(results_dir or E.DEFAULT_RESULTS) / b.name
    done = {p.parent.name.rsplit("-", 1)[-1] for p in root.rglob("record.json")} if root.exists() else set()
    cks = [ck for ck in (Path(work_dir) / b.name).glob("*/checkpoint.pt") if ck.parent.name not in done]
    for ck in sorted(cks, key=lambda c: -load_checkpoint(c)["epoch"]):
        key = ck.parent.name
        blob = gzip.compress(ck.read_bytes(), compresslevel=6)
        pieces = [blob[i:i + MAX_FILE] for i in range(0, len(blob), MAX_FILE)]
        files = _files(out)
        if len(files) + len(pieces) > MAX_FILES or sum(p.stat().st_size for p in files) + len(blob) > MAX_TOTAL:
            say(f"no room for the checkpoint {key} ({len(blob) / 2**20:.1f} MiB gzipped): it stays behind")
            continue
        for i, p in enumerate(pieces):
            (out / f"ckpt-{key}.gz.{i}").write_bytes(p)
        say(f"checkpoint {key} packed in {len(pieces)} piece(s)")


def unpack(folder: Path, results_dir=None, work_dir=None, budget: str = "paper") -> list[str]:
    """Records of ``folder`` into ``results/`` (each checked against its checksums before it is kept), and
    checkpoints into ``work_dir`` where ``run`` resumes them (unless the one there is further on)."""
    from . import results
    from .train import load_checkpoint, save_checkpoint

    b = E.get_budget(budget)
    results_dir = Path(results_dir or E.DEFAULT_RESULTS)
    work_dir = Path(work_dir or E.DEFAULT_WORK)
    done = []
    if (Path(folder) / results.CHECKS).exists():
        import pandas as pd

        store = results.Store(results_dir, b.name)
        rows = pd.read_csv(Path(folder) / results.CHECKS, dtype={"commit": str, "key": str}).to_dict("records")
        done.append(f"weight checks: {len(rows)} row(s) into {store.add_checks(rows)}")
    for tar in sorted(Path(folder).glob("record-*.tar")):
        with tarfile.open(tar) as t:
            members = [m for m in t.getmembers() if m.isfile()]
            if any(Path(m.name).is_absolute() or ".." in Path(m.name).parts for m in members):
                raise ValueError(f"{tar}: a path leaves the record's folder; not unpacked")
            files = {Path(m.name).name: t.extractfile(m).read() for m in members}
            dataset, name = Path(members[0].name).parts[:2]
        tmp = Path(folder) / f".check-{name}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            for n, data in files.items():
                (tmp / n).write_bytes(data)
            rec = results.read(tmp)  # its checksums, before it lands
        finally:
            shutil.rmtree(tmp)
        run = E.Run(dataset, rec.run.variant, rec.run.layers, rec.run.finetune, rec.run.seed,
                    rec.train_cfg.get("precision", "fp32"))
        if run.key(b) != rec.key:
            raise ValueError(f"{tar}: its record's key {rec.key} is not its run's {run.key(b)} at {b.name}")
        results.Store(results_dir, b.name).write_files(run, rec.key, files)
        done.append(f"record {dataset}/{name}")
    if (Path(folder) / "bench.csv").exists() and budget == "paper":
        done.append(f"bench: {_add_bench(Path(folder) / 'bench.csv', results_dir)}")
    pieces: dict[str, list[Path]] = {}
    for p in Path(folder).glob("ckpt-*.gz.*"):
        pieces.setdefault(p.name.split(".gz.")[0][len("ckpt-"):], []).append(p)
    for key, parts in sorted(pieces.items()):
        blob = gzip.decompress(b"".join(p.read_bytes() for p in sorted(parts, key=lambda p: int(p.name.rsplit(".", 1)[1]))))
        tmp = Path(folder) / f".{key}.pt"
        tmp.write_bytes(blob)
        ck = load_checkpoint(tmp)  # a torn or foreign file is refused, naming it
        dest = work_dir / b.name / key / "checkpoint.pt"
        if dest.exists() and load_checkpoint(dest)["epoch"] >= ck["epoch"]:
            done.append(f"checkpoint {key}: epoch {ck['epoch']}, the one here is as far: kept")
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            save_checkpoint(ck, dest)
            done.append(f"checkpoint {key}: epoch {ck['epoch']} -> {dest}")
        tmp.unlink()
    return done


def _add_bench(slot_bench: Path, results_dir: Path) -> Path:
    """Append a slot's timings to ``results/bench/gpu.csv`` (the rows of an earlier unpack of the same
    device and date are replaced)."""
    import pandas as pd
    import torch

    from .bench import BATCH, step_flops
    from .config import preset
    from .model import LadderVAE

    cfg, _ = preset("LVAE+BN+WU", 5)
    torch.manual_seed(0)
    new = bench_rows(slot_bench, step_flops(LadderVAE(cfg), torch.bernoulli(torch.rand(BATCH, cfg.x_dim))))
    dest = Path(results_dir) / "bench" / "gpu.csv"
    if dest.exists():
        old = pd.read_csv(dest)
        same = old.device.isin(new.device) & old.date.isin(new.date) & old.impl.isin(new.impl)
        new = pd.concat([old[~same], new], ignore_index=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    new.to_csv(dest, index=False, float_format="%.4g")
    return dest


def prepare(data_src, dest: Path = DATA_DIR, work_dirs=()) -> Path:
    """Copy MNIST (verified) and the commit into ``dest`` (``gpu-data/``), to be carried with the tree, and
    the epochs of the checkpoints in ``work_dirs`` (runs training here, which a slot leaves alone) into
    ``elsewhere.json``."""
    from .data import FILES, fetch
    from .train import git_commit, load_checkpoint

    away: dict[str, dict] = {}
    for w in map(Path, work_dirs):
        for ck in w.glob("*/*/checkpoint.pt"):
            away.setdefault(ck.parent.parent.name, {})[ck.parent.name] = load_checkpoint(ck)["epoch"]
    dest.mkdir(parents=True, exist_ok=True)
    (dest / ELSEWHERE).write_text(json.dumps(away, indent=1, sort_keys=True) + "\n")

    for key in (k for k in FILES if k.startswith("mnist")):
        src = fetch(key, data_src, allow_download=False)
        target = dest / FILES[key].path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
    (dest / "commit.txt").write_text(git_commit() + "\n")
    return dest


def check_returned(out: Path) -> list[str]:
    """What in ``out`` a lease would not return (too many files, too large, too deep, odd names)."""
    files = _files(out)
    bad = [f"{len(files)} files (at most {MAX_FILES})"] if len(files) > MAX_FILES else []
    bad += [f"{p.name}: {p.stat().st_size / 2**20:.1f} MiB" for p in files if p.stat().st_size > MAX_FILE]
    bad += [f"{p}: more than two folders down" for p in files if len(p.relative_to(out).parts) > 3]
    bad += [f"{p.name}: odd characters" for p in files if _safe(p.name) != p.name]
    total = sum(p.stat().st_size for p in files)
    bad += [f"{total / 2**20:.1f} MiB in all (at most {MAX_TOTAL / 2**20:.0f})"] if total > MAX_TOTAL else []
    return bad


def as_json(out: Path) -> str:
    return json.dumps({p.name: p.stat().st_size for p in _files(out)}, indent=1)
