"""Command line: ``python -m lvae_lib --help`` lists the commands, ``python -m lvae_lib <command> --help`` each one's options."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .config import DATASETS, PRESETS, TrainConfig, preset
from .experiments import BUDGETS, FIGURES, ROOT

EXECUTION_PAGE = ROOT / "notebooks" / "execution.ipynb"  # shows how every notebook ran (`figures` runs it last)


def count(lo: int = 0, hi: int | None = None):
    """An argparse type: an integer in [lo, hi], else argparse's one-line error naming the option (exit 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            span = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
            raise argparse.ArgumentTypeError(f"must be an integer {span}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def real(lo: float = 0.0, strict: bool = True):
    """An argparse type: a finite number > lo (``strict``) or >= lo."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not (value > lo if strict else value >= lo) or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be a finite number {'>' if strict else '>='} {lo:g}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def device(text: str) -> str:
    """An argparse type: a torch device this machine has (``cpu``, ``cuda``, ``cuda:1``)."""
    import torch

    try:
        d = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"not a torch device: {text!r} (e.g. cpu, cuda, cuda:0)") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text}: no CUDA device is visible here (torch {torch.__version__})")
    if d.type == "cuda" and d.index is not None and d.index >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{text}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return text


def _add_train_args(p: argparse.ArgumentParser) -> None:
    tc = TrainConfig()  # the defaults are the config's: one owner
    p.add_argument("--preset", default="LVAE+BN+WU", choices=sorted(PRESETS),
                   help="model variant as named in the paper's figures (default: %(default)s)")
    p.add_argument("--layers", type=count(1, 5), default=5, help="number of stochastic layers, 1-5 (default: %(default)s)")
    p.add_argument("--dataset", default="mnist", choices=list(DATASETS),
                   help="dataset (default: %(default)s); omniglot28 is the documented stand-in")
    p.add_argument("--epochs", type=count(1), default=tc.epochs, help="training epochs (paper: 2000 MNIST/NORB, 1500 OMNIGLOT)")
    p.add_argument("--warmup", type=count(0), default=200,
                   help="warm-up epochs N_t for presets with WU (paper: 200); ignored for presets without WU")
    p.add_argument("--lr", type=real(0), default=tc.lr, help="Adam learning rate (default: %(default)s)")
    p.add_argument("--batch-size", type=count(1), default=tc.batch_size, help="minibatch size (default: %(default)s)")
    p.add_argument("--mc", type=count(1), default=tc.mc_samples, help="Monte Carlo samples per example (fine-tuning: 10)")
    p.add_argument("--iw", type=count(1), default=tc.iw_samples, help="importance samples in the objective (fine-tuning: 10)")
    p.add_argument("--eval-every", type=count(1), default=tc.eval_every, help="epochs between test L_1 / active-unit records")
    p.add_argument("--train-subset", type=count(0), default=tc.train_subset, help="use only the first N training images (0: all)")
    p.add_argument("--test-subset", type=count(0), default=tc.test_subset, help="use only the first N test images (0: all)")
    p.add_argument("--seed", type=count(0), default=tc.seed)
    p.add_argument("--no-share", action="store_true",
                   help="LVAE: separate top-down MLPs for inference (the authors' released code); default shares them")
    p.add_argument("--device", type=device, default="cpu", help="torch device, e.g. cpu or cuda (default: %(default)s)")
    p.add_argument("--data-dir", default=None, help="folder with the data files (else $LVAE_DATA_DIR, then the cache)")
    _add_step_args(p)


COMPILE = {"auto": None, "on": True, "off": False}


def _add_step_args(p: argparse.ArgumentParser) -> None:
    """How the training step computes: one definition for `train` and `run`."""
    from .config import PRECISIONS

    p.add_argument("--precision", default=TrainConfig.precision, choices=list(PRECISIONS),
                   help="the training step's precision: " + "; ".join(f"{k}: {v}" for k, v in PRECISIONS.items())
                        + ". Part of the run's key, so records of each precision are kept apart (default: %(default)s)")
    p.add_argument("--compile", default=None, choices=list(COMPILE),
                   help="the training step through torch.compile: auto compiles runs of 20,000 steps or more (a "
                        "minute of compiling), on always, off never. Default: off. On a CPU the committed records were "
                        "made by the eager step, which a compiled one differs from by rounding; on a GPU the eager "
                        "step replays a CUDA graph, and the compiled one failed a CUDA test on an H200")


def cmd_train(a) -> int:
    import pandas as pd

    from . import results
    from .data import train_data
    from .files import atomic
    from .train import checkpoint_path, fit, run_dir_lock

    mcfg, warm = preset(a.preset, a.layers, a.dataset, share_top_down=not a.no_share)
    tcfg = TrainConfig(epochs=a.epochs, warmup_epochs=a.warmup if warm else 0, lr=a.lr, batch_size=a.batch_size,
                       mc_samples=a.mc, iw_samples=a.iw, eval_every=a.eval_every, seed=a.seed,
                       train_subset=a.train_subset, test_subset=a.test_subset, precision=a.precision)
    run = Path(a.run_dir)
    data = train_data(a.dataset, a.data_dir)
    with run_dir_lock(run):  # the outputs too are written by the trainer that holds the run dir
        compile = COMPILE[a.compile or "off"]
        [(model, state)] = fit(mcfg, [tcfg], data, [checkpoint_path(run)], a.device, compile=compile)
        with atomic(run / "metrics.csv") as f:
            pd.DataFrame(state["history"]).to_csv(f, index=False)
        with atomic(run / results.WEIGHTS) as f:  # the records' weights format, read by results.load_model
            f.write_bytes(results.weights_bytes(model))
        with atomic(run / "config.json") as f:
            f.write_text(json.dumps({"model": state["model_cfg"], "train": state["train_cfg"], "preset": a.preset,
                                     "dataset": a.dataset}, indent=1))
    last = state["history"][-1]
    print(f"done: epoch {last['epoch']}, train ELBO {last['train_elbo']:.2f}, test L_1 {last.get('test_elbo', float('nan')):.2f}"
          f" -> {run}")
    return 0


def cmd_evaluate(a) -> int:
    from . import analysis, results
    from .data import train_data
    from .distributions import binarize
    from .files import atomic
    from .objectives import iw_bound

    run = Path(a.run_dir)
    is_record = (run / "record.json").exists()  # a record of results/ (one with weights), or a `train` run
    if not is_record and not (run / "config.json").exists():
        print(f"error: {run} has no config.json (nor record.json); train a model there first", file=sys.stderr)
        return 2
    name = f"eval_L{a.k}.json" if not a.test_subset else f"eval_L{a.k}_first{a.test_subset}.json"
    out = Path(a.out) if a.out else (None if is_record else run / name)  # a record's folder is sealed: never written
    if out is not None and (not os.access(out.parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK))):
        print(f"error: cannot write {out}: {out.parent} is read-only", file=sys.stderr)
        return 2
    try:
        if is_record:
            rec = results.read(run)
            model, dataset = rec.load_model(a.device), rec.run.dataset
        else:
            try:
                cfg = json.loads((run / "config.json").read_text())
                model_cfg, dataset = cfg["model"], cfg["dataset"]
            except (ValueError, KeyError, TypeError) as e:
                print(f"error: {run / 'config.json'} is not a config written by `train` ({type(e).__name__}: {e})",
                      file=sys.stderr)
                return 2
            model = results.load_model(model_cfg, run / results.WEIGHTS, a.device)
    except (results.BadRecord, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    data = train_data(dataset, a.data_dir)
    x = data.x_test[: a.test_subset or None].to(a.device)
    if a.recompute_bn:
        x_train = data.x_train.to(a.device)
        analysis.recompute_batchnorm(model, binarize(x_train) if data.binarize else x_train)
    lk = iw_bound(model, x, k=a.k, batch_size=a.batch_size)
    res = {"k": a.k, "test_LK": float(lk.mean()), "n_test": len(x), "recompute_bn": a.recompute_bn,
           # the paper's measure (units whose test KL exceeds ACTIVE_KL nats), and Burda et al.'s activity A_u
           "active_units": analysis.active_units_kl(analysis.unit_kl(model, x)),
           "active_units_burda": analysis.active_units(model, x[:2000])}
    if out is not None:  # a subset's result never overwrites the full test set's
        with atomic(out) as f:
            f.write_text(json.dumps(res, indent=1))
    print(json.dumps(res))
    return 0


def cmd_check_weights(a) -> int:
    from .experiments import DEFAULT_RESULTS
    from .runner import check_records

    rows = check_records(a.budget, a.results_dir or DEFAULT_RESULTS, a.device, a.data_dir, refresh=a.refresh)
    if not rows:
        print(f"nothing to check: every {a.budget}-budget record that keeps its weights has its checks "
              f"(--refresh to redo them)")
    return 0


def cmd_figures(a) -> int:
    from .notebooks import execute_notebook, typed_parameters

    bad = [p for p in a.param if "=" not in p]
    if bad:
        print(f"error: -p {bad[0]}: give NAME=VALUE, e.g. -p seed=1", file=sys.stderr)
        return 2
    raw = dict(p.split("=", 1) for p in a.param)
    try:  # every notebook's parameters checked before any runs
        params = {nb: typed_parameters(nb, raw) for nb in a.notebooks}
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    ran = [nb for nb in a.notebooks if Path(nb).resolve() != EXECUTION_PAGE]
    for nb in ran:
        execute_notebook(nb, parameters=params[nb])
    # the page that shows how the book's notebooks ran: always last, whenever one of them (or it) ran
    if EXECUTION_PAGE.exists() and any(Path(nb).resolve().parent == EXECUTION_PAGE.parent for nb in a.notebooks):
        execute_notebook(EXECUTION_PAGE)
    return 0


def cmd_run(a) -> int:
    from . import experiments as E
    from . import results
    from .sweep import sweep

    from dataclasses import replace

    runs = E.runs_for(a.target)
    if a.only:
        labels = {r.label for r in runs}
        bad = [x for x in a.only if x not in labels]
        if bad:
            print(f"error: --only {' '.join(bad)}: no such run in {' '.join(a.target)}; "
                  f"choose from {', '.join(sorted(labels))}", file=sys.stderr)
            return 2
        runs = [r for label in dict.fromkeys(a.only) for r in runs if r.label == label]  # in the order given
    runs = [replace(r, seed=s, precision=a.precision) for s in a.seed for r in runs]
    from .query import eta_hours

    b = E.get_budget(a.budget)
    todo = results.Store(a.results_dir or E.DEFAULT_RESULTS, b.name).missing(E.keyed(runs, b), a.refresh)
    if todo:  # the plan, before any training
        h = eta_hours(todo, b, a.device)
        print(f"{len(todo)} run(s) to train at the {b.name} budget on {a.device}, about "
              f"{f'{h:.1f} h' if h >= 1 else f'{60 * h:.0f} min'} of training one at a time" + (f", {a.jobs} at a time" if a.jobs > 1 else "")
              + (" (stacked by shape)" if a.stack else "") + ": "
              + ", ".join(f"{r.label} s{r.seed}" for r in todo), flush=True)
    try:
        rep = sweep(runs, a.budget, jobs=a.jobs, backend=a.backend, address=a.address, device=a.device,
                    threads=a.threads, num_gpus=a.num_gpus, retries=a.retries, results_dir=a.results_dir,
                    work_dir=a.work_dir, data_root=a.data_dir, refresh=a.refresh, stack=a.stack,
                    compile=COMPILE[a.compile or "off"])
    except KeyboardInterrupt:
        print("\ninterrupted: the records written so far are complete, the runs in progress left their "
              "checkpoints; run the same command again to continue", file=sys.stderr)
        return 130
    print(rep)
    df = results.Store(a.results_dir or E.DEFAULT_RESULTS, b.name).table(E.keyed(runs, b))
    cols = ["dataset", "label", "seed", "train_L1", "test_L1", "test_LK", "train_seconds"]
    print(df[cols].round(2).to_string(index=False) if len(df) else "no complete records")
    return 1 if rep.failed else 0


def cmd_bench(a) -> int:
    import torch

    from .bench import run_benchmark

    if a.threads:
        torch.set_num_threads(a.threads)
    out = a.out or f"results/bench/{'cpu' if a.device == 'cpu' else 'gpu'}.csv"
    run_benchmark(a.device, steps=a.steps, repeats=a.repeats, k=a.k, images=a.images, processes=a.processes, out=out,
                  profile=a.profile)
    return 0


def cmd_gpu_slot(a) -> int:
    from . import gpu_slot

    return gpu_slot.run_slot(Path(a.out), a.budget, a.device, a.deadline, a.results_dir, a.work_dir, a.data_dir,
                             sizes=tuple(a.sizes))


def cmd_gpu_unpack(a) -> int:
    from . import gpu_slot

    for line in gpu_slot.unpack(Path(a.folder), a.results_dir, a.work_dir, a.budget):
        print(line)
    return 0


def cmd_gpu_data(a) -> int:
    from . import gpu_slot

    print(f"wrote {gpu_slot.prepare(a.data_dir, work_dirs=a.work_dir)}: carry it with the tree (run(carry=['gpu-data']))")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lvae_lib",
                                 description="Ladder VAE reproduction: train and evaluate models, regenerate figures.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("train", help="train one model (resumable: run again to continue)",
                       description="Train one VAE/LVAE. Re-running with the same --run-dir resumes from its checkpoint.")
    p.add_argument("run_dir", help="folder for checkpoint.pt, metrics.csv, model.safetensors, config.json")
    _add_train_args(p)
    p.set_defaults(fn=cmd_train)
    p = sub.add_parser("evaluate", help="importance-weighted test log-likelihood L_K of a trained model",
                       description="Evaluate L_K (eq. 6) and the active units (the paper's measure: test KL above 0.01 nats; Burda's A_u beside it) on the test set of a run made by `train`, or of a record "
                                   "that keeps its weights (results/paper/...).")
    p.add_argument("run_dir", help="a `train` run folder, or a record folder with model.safetensors")
    p.add_argument("--out", default=None, help="write the result (JSON) here; default: RUN_DIR/eval_L<K>.json for a "
                                               "`train` run; a record's folder is never written (printed only)")
    p.add_argument("--k", type=count(1), default=5000, help="importance samples K (paper: 5000)")
    p.add_argument("--batch-size", type=count(1), default=100, help="test images per chunk")
    p.add_argument("--test-subset", type=count(0), default=0, help="only the first N test images (0: all)")
    p.add_argument("--recompute-bn", action="store_true",
                   help="re-estimate batch-norm statistics on the training set first (the authors' choice)")
    p.add_argument("--device", type=device, default="cpu")
    p.add_argument("--data-dir", default=None)
    p.set_defaults(fn=cmd_evaluate)
    p = sub.add_parser("run", help="train and evaluate every missing run of a figure/table (resumable)",
                       description="Fill results/<budget>/ with the records a figure or table needs; complete "
                                   "records are skipped, interrupted runs resume from their checkpoints in runs/.")
    p.add_argument("target", nargs="+", choices=[*FIGURES, "all"], metavar="target",
                   help="fig2 ... fig9_10, table1, table2, or all; several are trained as one sweep, in the order given")
    p.add_argument("--budget", default="cpu", choices=list(BUDGETS),
                   help="smoke (seconds, checks the code path), cpu (hours per model on a CPU), paper (the paper's "
                        "protocol: about 8 h per model on one CPU thread, 35 min on a shared GPU); default: %(default)s")
    p.add_argument("--device", type=device, default="cpu")
    p.add_argument("--seed", type=count(0), nargs="+", default=[0], metavar="SEED",
                   help="training seed(s); several (--seed 0 1 2) train every run once per seed (default: 0)")
    p.add_argument("--only", nargs="+", default=None, metavar="LABEL",
                   help="only these runs of the targets, by label (e.g. --only LVAE+BN+WU-L5 VAE+BN+WU-L5)")
    p.add_argument("--refresh", action="store_true",
                   help="also retrain complete records that have no per-image estimates (made before records kept "
                        "them), so that their claims get an interval; each new record says whether it reproduced the old. "
                        "A fine-tuned run retrains the other fine-tuned runs of its base with it (table1 compares "
                        "them from one base)")
    p.add_argument("--stack", action="store_true",
                   help="train runs that differ only in seed and warm-up (VAE+BN and VAE+BN+WU, seeds) as one "
                        "stacked model, one step for all (lvae_lib.stacked); then evaluate each as usual. Off by "
                        "default on a GPU too: on an H200 the CUDA-graph replay of one model beat every stack per model")
    p.add_argument("--results-dir", default=None, help="default: the repository's results/")
    p.add_argument("--work-dir", default=None, help="checkpoints; default: the repository's runs/")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--jobs", type=count(1), default=1, help="runs at a time on this machine, each in its own process")
    p.add_argument("--threads", type=count(1), default=None,
                   help="torch threads per run (default: cores / jobs; with Ray: 1, also the task's num_cpus)")
    p.add_argument("--backend", default="local", choices=["local", "ray"],
                   help="local processes, or one Ray task per run (pip install '.[ray]')")
    p.add_argument("--address", default=None, help="Ray cluster: auto, ray://host:10001, ... (default: start a local one)")
    p.add_argument("--num-gpus", type=real(0, strict=False), default=0.0, help="Ray: GPUs per task; 0.25 puts four runs on a card")
    p.add_argument("--retries", type=count(0), default=1, help="attempts after a failure before a run is reported failed")
    _add_step_args(p)
    p.set_defaults(fn=cmd_run)
    p = sub.add_parser("check-weights", help="check kept models: L_K with batch norm recomputed, L_20000 on 1,000 images",
                       description="For every record of --budget that keeps its weights (the paper budget's), "
                                   "compute test L_K with the batch-norm statistics recomputed over the training set "
                                   "(the authors' convention) against the record's running averages, and L_20000 on "
                                   "the first 1,000 test images against L_K of the same samples; rows go to "
                                   "results/<budget>/weight_checks.csv. On one CPU thread about 80 min a record.")
    p.add_argument("--budget", default="paper", choices=list(BUDGETS))
    p.add_argument("--device", type=device, default="cpu")
    p.add_argument("--data-dir", default=None, help="default: $LVAE_DATA_DIR, then the cache")
    p.add_argument("--results-dir", default=None)
    p.add_argument("--refresh", action="store_true", help="check records that have their checks again")
    p.set_defaults(fn=cmd_check_weights)
    p = sub.add_parser("figures", help="re-execute notebooks in place with papermill and sync their .py pairs")
    p.add_argument("notebooks", nargs="+", help="paths of .ipynb files")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a notebook parameter (string value), repeatable")
    p.set_defaults(fn=cmd_figures)
    p = sub.add_parser("bench", help="speed: library vs a plain reference training step, sgemm peak, L_K throughput",
                       description="Times, in one run: the machine's fp32 matmul peak; a training step of the "
                                   "5-layer VAE and LVAE (batch 256) in a plain reference loop and in the library; "
                                   "L_K evaluation of the 5-layer LVAE. Prints ratios and writes a CSV.")
    p.add_argument("--device", type=device, default="cpu")
    p.add_argument("--threads", type=count(0), default=0, help="torch threads (default: torch's choice, all cores)")
    p.add_argument("--steps", type=count(1), default=40, help="training steps per timing (default: %(default)s)")
    p.add_argument("--repeats", type=count(1), default=3, help="timings per implementation, median kept")
    p.add_argument("--k", type=count(1), default=5000, help="importance samples of the L_K timing (default: %(default)s)")
    p.add_argument("--images", type=count(1), default=20, help="test images of the L_K timing (default: %(default)s)")
    p.add_argument("--processes", type=count(0), default=2,
                   help="also time this many 1-thread training processes at once (0/1: skip; default: %(default)s)")
    p.add_argument("--out", default=None, help="CSV path (default: results/bench/cpu.csv or gpu.csv)")
    p.add_argument("--profile", action="store_true", help="also print (and save) torch.profiler's top operators of a step")
    p.set_defaults(fn=cmd_bench)
    p = sub.add_parser("gpu-slot", help="one short GPU lease -> paper-budget records (check, bench, plan, train, pack)",
                       description="For a GPU lent for minutes, run from the tree root with the machine's own python3 "
                                   "(nothing installed): checks the GPU steps, measures them, plans which missing "
                                   "paper-budget MNIST runs finish before --deadline, trains them stacked, evaluates, "
                                   "and packs records, checkpoints, bench CSV into at most 8 files under --out. "
                                   "Unpack here with gpu-unpack. See lvae_lib/gpu_slot.py.")
    p.add_argument("--out", required=True, help="folder whose files come back (the lease's $OUT)")
    p.add_argument("--deadline", type=real(0), default=560, help="seconds for everything (default: %(default)s)")
    p.add_argument("--budget", default="paper", choices=list(BUDGETS), help="smoke for a rehearsal (default: paper)")
    p.add_argument("--device", type=device, default="cuda")
    p.add_argument("--sizes", type=count(1), nargs="+", default=[1, 2, 4, 16], help="stack sizes M to time")
    p.add_argument("--results-dir", default=None)
    p.add_argument("--work-dir", default=None, help="checkpoints (default: gpu-runs beside --out)")
    p.add_argument("--data-dir", default=None, help="default: gpu-data/ (made by gpu-data), then $LVAE_DATA_DIR")
    p.set_defaults(fn=cmd_gpu_slot)
    p = sub.add_parser("gpu-unpack", help="put what a GPU slot brought back into results/ and runs/",
                       description="Records (checked against their checksums) into results/<budget>/, checkpoints "
                                   "into the work dir where `run` resumes them (unless the one there is further on).")
    p.add_argument("folder")
    p.add_argument("--budget", default="paper", choices=list(BUDGETS))
    p.add_argument("--results-dir", default=None)
    p.add_argument("--work-dir", default=None, help="default: the repository's runs/")
    p.set_defaults(fn=cmd_gpu_unpack)
    p = sub.add_parser("gpu-data", help="copy MNIST (verified) and the commit into gpu-data/, to carry to a GPU machine")
    p.add_argument("--data-dir", default=None, help="where MNIST is (default: $LVAE_DATA_DIR, then the cache)")
    p.add_argument("--work-dir", nargs="*", default=[],
                   help="work dirs of runs training here (e.g. runs): the slot leaves their runs alone")
    p.set_defaults(fn=cmd_gpu_data)
    a = ap.parse_args(argv)
    if getattr(a, "precision", None) == "tf32" and not str(a.device).startswith("cuda"):
        ap.error(f"--precision tf32 needs --device cuda (TF32 is a GPU tensor-core format), not {a.device}")
    from .data import DataError
    from .train import CheckpointError, DivergenceError

    try:
        return a.fn(a)
    except KeyboardInterrupt:
        if a.cmd == "evaluate":
            print("\ninterrupted: L_K is computed in one pass and was not saved; run the command again to start it "
                  "anew", file=sys.stderr)
        else:
            print("\ninterrupted: the checkpoints written so far are kept; run the same command again to resume",
                  file=sys.stderr)
        return 130
    except ValueError as e:  # e.g. a run dir trained with other settings: one line, and what to do
        if a.cmd == "train" and "other configs" in str(e):
            print(f"error: {e}. A run's settings (--epochs too) are fixed when it starts: to train longer or "
                  f"otherwise, give a new run dir", file=sys.stderr)
            return 2
        raise
    except (CheckpointError, DivergenceError, DataError, PermissionError, ConnectionError) as e:  # one line
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a full disk, a read-only folder: the path and the reason, no traceback
        print(f"error: {e.filename + ': ' if e.filename else ''}{e.strerror or e}", file=sys.stderr)
        return 1
