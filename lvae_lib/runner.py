"""The runner: makes one run's record (train, evaluate, write it into the results store).

:func:`run_one` trains the run of the registry (:class:`lvae_lib.experiments.Run`) at a budget, unless its
record is complete, then computes what the figures need from the trained model (:func:`derived`) and
writes a :class:`lvae_lib.results.Record` with its provenance: the commit of the code
(:func:`lvae_lib.train.git_commit`; per epoch too, like the device), device, threads, torch, dates and seconds.
"""
from __future__ import annotations

import dataclasses
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from . import analysis, evidence, results
from .config import DATASETS, to_dict
from .data import fixed_binarization, train_data
from .experiments import DEFAULT_RESULTS, DEFAULT_WORK, NESTED_K, Budget, Run, get_budget, run_dir
from .objectives import iw_bound
from .train import checkpoint_path, device_label, git_commit, train


def derived(model, run: Run, budget: Budget, data, progress=False) -> tuple[results.Summary, dict]:
    """The summary numbers and the small arrays (:data:`lvae_lib.results.ARRAYS`) the figures need,
    from a trained model; ``progress`` shows a bar for L_K, the long part (about 30 min at the paper
    budget on one CPU thread)."""
    x_test = data.x_test
    x_train = data.x_train[:10_000]
    x_train = fixed_binarization(x_train) if data.binarize else x_train
    n_an = budget.analysis_images
    # in this order, as records have always drawn their samples (a record is deterministic for its seed)
    train_l1 = iw_bound(model, x_train, k=1, batch_size=1000, progress=False)
    test_l1 = iw_bound(model, x_test, k=1, batch_size=1000, progress=False)
    # where K > NESTED_K, the first NESTED_K of the same samples give L_1000 too (the cpu budget's bound)
    nested = (NESTED_K,) if budget.eval_k > NESTED_K else ()
    out = iw_bound(model, x_test, k=budget.eval_k, batch_size=100, progress=progress, nested=nested)
    test_lk, inner = out if nested else (out, {})
    summary = results.Summary(train_L1=float(train_l1.mean()), test_L1=float(test_l1.mean()),
                              test_LK=float(test_lk.mean()), K=budget.eval_k,
                              active_units=analysis.active_units(model, x_test[:n_an]),
                              layer_kl=[float(v) for v in analysis.layer_kl(model, x_test)])
    # per image, in data-set order: two models' estimates on the same images give a paired difference
    arrays = {"train_L1_per_image": train_l1.numpy().astype(np.float32),
              "test_L1_per_image": test_l1.numpy().astype(np.float32),
              "test_LK_per_image": test_lk.numpy().astype(np.float32)}
    arrays.update({f"test_L{m}_per_image": v.numpy().astype(np.float32) for m, v in inner.items()})
    arrays.update({f"unit_kl_l{i + 1}": u for i, u in enumerate(analysis.unit_kl(model, x_test))})
    for i, z in enumerate(analysis.latent_samples(model, x_test[:n_an])):
        arrays[f"pca_l{i + 1}"] = analysis.pca_2d(z).astype(np.float16)
    if data.y_test is not None:
        arrays["pca_labels"] = data.y_test[:n_an].cpu().numpy().astype(np.int16)
    if run.layers == 5:
        torch.manual_seed(0)
        to_u8 = lambda a: (np.clip(a, 0, 1) * 255).round().astype(np.uint8)  # noqa: E731
        arrays["samples"] = to_u8(analysis.prior_samples(model, 64))
        arrays["data"] = to_u8(data.x_test[:32].cpu().numpy())
        arrays["reconstructions"] = to_u8(analysis.reconstructions(model, x_test[:32]))
    # last, so that every number above draws the samples it always drew
    arrays["layer_kl_per_image"] = analysis.layer_kl_per_image(model, x_test).astype(np.float32)
    return summary, arrays


def run_one(run: Run, budget: str | Budget, results_dir=DEFAULT_RESULTS, work_dir=DEFAULT_WORK, device="cpu",
            progress=True, data_root=None, compile: bool | None = False) -> results.Record:
    """Train and evaluate ``run`` unless its record is complete; returns the record. ``compile``: the
    training step through ``torch.compile`` (None: when the run is long enough, :func:`lvae_lib.step.choose`)."""
    b = get_budget(budget) if isinstance(budget, str) else budget
    store = results.Store(results_dir, b.name)
    key = run.key(b)
    if store.complete(run, key):
        return store.load(run, key)
    t0 = time.perf_counter()
    commit = git_commit()  # before training: the code that runs, not the HEAD of hours later
    data = train_data(run.dataset, data_root)
    mcfg, tc = run.configs(b)
    model, state = train(mcfg, tc, data, run_dir(work_dir, b, run.base()), device=device, progress=progress,
                         compile=compile)
    history = state["history"]
    if run.finetune:
        ft = run.finetune_config(b)
        model, st2 = train(mcfg, ft, data, run_dir(work_dir, b, run), device=device, progress=progress, compile=compile,
                           init_from=checkpoint_path(run_dir(work_dir, b, run.base())))  # starts from the base model
        history = history + [{**r, "epoch": r["epoch"] + tc.epochs, "phase": "finetune"} for r in st2["history"]]
    sub = data.subset(tc.train_subset, tc.test_subset).to(device)
    model.eval()
    summary, arrays = derived(model, run, b, sub, progress=progress)
    for ep, units in state["kl_snapshots"].items():
        for i, u in enumerate(units):
            arrays[results.kl_snapshot_name(ep, i + 1)] = np.asarray(u, np.float32)
    record = results.Record(
        run=results.RunInfo(dataset=run.dataset, dataset_name=DATASETS[run.dataset].display_name,
                            variant=run.variant, layers=run.layers, finetune=run.finetune, seed=run.seed,
                            label=run.label),
        budget=b.name, key=key, model_cfg=to_dict(mcfg), train_cfg=to_dict(tc),
        finetune_cfg=to_dict(run.finetune_config(b)) if run.finetune else None,
        summary=summary,
        provenance=results.Provenance(
            wall_seconds=round(time.perf_counter() - t0, 1), train_seconds=round(sum(r["seconds"] for r in history), 1),
            device=device_label(device), torch=torch.__version__, git_commit=commit, threads=torch.get_num_threads(),
            date=time.strftime("%Y-%m-%d"),
            epochs_by_device=dict(Counter(r.get("device", "unrecorded") for r in history)),
            epochs_by_commit=dict(Counter(r.get("commit", "unrecorded") for r in history))))
    store.write(run, key, record, history, arrays, model=model if b.keep_weights else None)
    return store.load(run, key)


def attach_weights(run: Run, budget: str | Budget, checkpoint, results_dir=DEFAULT_RESULTS, data_root=None) -> Path:
    """Add the weights of ``run``'s final ``checkpoint`` to its committed record, which was written before
    records kept them; its key, numbers and files stay as they are (the checksums gain the weights).

    The checkpoint must be the record's model: the same configs, the last epoch, and, drawn from the
    checkpoint's random state as :func:`derived` drew them, the record's own train and test L_1 (exactly,
    up to float rounding); anything else is refused with the numbers that differ.
    """
    b = get_budget(budget) if isinstance(budget, str) else budget
    store = results.Store(results_dir, b.name)
    key = run.key(b)
    rec = store.load(run, key)
    ck = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if ck["model_cfg"] != rec.model_cfg or ck["train_cfg"] != rec.train_cfg or ck["epoch"] != rec.train_cfg["epochs"]:
        raise ValueError(f"{checkpoint} (epoch {ck['epoch']}) is not the final checkpoint of {rec.path}")
    from .config import ModelConfig
    from .model import LadderVAE

    model = LadderVAE(ModelConfig(**rec.model_cfg))
    model.load_state_dict(ck["model"])
    model.eval()
    torch.set_rng_state(ck["rng"]["cpu"])
    data = train_data(run.dataset, data_root).subset(rec.train_cfg["train_subset"], rec.train_cfg["test_subset"])
    x_train = data.x_train[:10_000]
    x_train = fixed_binarization(x_train) if data.binarize else x_train
    got = (float(iw_bound(model, x_train, k=1, batch_size=1000, progress=False).mean()),
           float(iw_bound(model, data.x_test, k=1, batch_size=1000, progress=False).mean()))
    want = (rec.summary.train_L1, rec.summary.test_L1)
    if max(abs(g - w) for g, w in zip(got, want)) > 1e-6:
        raise ValueError(f"{checkpoint} does not reproduce {rec.path}: train/test L_1 {got} against the record's {want}")
    folder = store.path(run, key)
    with store._atomic(run, key) as tmp:
        for f in folder.iterdir():
            (tmp / f.name).write_bytes(f.read_bytes())
        (tmp / results.WEIGHTS).write_bytes(results.weights_bytes(model))
    after = store.load(run, key)
    assert dataclasses.replace(after, checksums=None) == dataclasses.replace(rec, checksums=None)
    return folder


CHECKS_K_BIG, CHECKS_IMAGES_BIG = 20_000, 1_000  # L_K at K = 20,000 on the first 1,000 test images


def weight_checks(rec: results.Record, data, device="cpu", k_big: int | None = None, n_big: int | None = None,
                  progress: bool = False) -> list[dict]:
    """Two checks of a record's kept model (its :data:`lvae_lib.results.WEIGHTS`) that its numbers rest on:

    * ``bn_recomputed``: test L_K (the record's K) with every batch-norm layer's statistics recomputed over the
      training set (the authors' convention, :func:`lvae_lib.analysis.recompute_batchnorm`) against the
      record's own L_K with the running averages, per test image (not for a model without batch norm, which
      the recomputation leaves as it is: about 26 min of one CPU thread for Monte Carlo noise alone);
    * ``k_<k_big>``: L_{k_big} on the first ``n_big`` test images against L_K of the first K of the same
      samples: how far the record's L_K is from converged in K.

    Each row: the check, the mean of the new estimate (``value``) and of the one it is compared with
    (``reference``), their mean per-image difference ``diff`` and its standard error ``diff_se`` (an interval
    is ``diff ± 1.96 diff_se``), with the record's label and key and the provenance of the check."""
    K = rec.summary.K
    k_big, n_big = k_big or CHECKS_K_BIG, n_big or CHECKS_IMAGES_BIG
    x_test = data.x_test.to(device)
    x_train = data.x_train.to(device)
    own = np.load(Path(rec.path) / "arrays.npz")["test_LK_per_image"].astype(np.float64)
    if len(own) != len(x_test):
        raise ValueError(f"{rec.path}: its {len(own)} per-image L_{K} do not match the {len(x_test)} test images given")
    rows = []

    def row(check, new, ref, k, seconds):
        d = np.asarray(new, np.float64) - np.asarray(ref, np.float64)
        return {"label": rec.run.label, "seed": rec.run.seed, "key": rec.key, "check": check, "k": k,
                "n_images": len(d), "value": float(np.mean(new)), "reference": float(np.mean(ref)),
                "diff": float(d.mean()), "diff_se": float(d.std(ddof=1) / np.sqrt(len(d))),
                "device": device_label(device), "torch": torch.__version__, "commit": git_commit(),
                "seconds": round(seconds, 1), "date": time.strftime("%Y-%m-%d")}

    t0 = time.perf_counter()
    model = rec.load_model(device)
    if any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules()):  # else nothing to recompute
        torch.manual_seed(0)  # the training set's binarization and the noise of the statistics pass
        analysis.recompute_batchnorm(model, fixed_binarization(x_train) if data.binarize else x_train)
        model.eval()
        lk_bn = iw_bound(model, x_test, k=K, batch_size=100, progress=progress)
        rows.append(row("bn_recomputed", lk_bn.numpy(), own, K, time.perf_counter() - t0))
        t0 = time.perf_counter()
        model = rec.load_model(device)  # the running averages again
    torch.manual_seed(0)
    big, inner = iw_bound(model, x_test[:n_big], k=k_big, batch_size=100, progress=progress, nested=(K,))
    rows.append(row(f"k_{k_big}", big.numpy(), inner[K].numpy(), k_big, time.perf_counter() - t0))
    return rows


def records_to_check(budget: str = "paper", results_dir=DEFAULT_RESULTS, refresh: bool = False) -> list:
    """The records of ``budget`` that keep their weights and have no weight checks yet (all of them with ``refresh``);
    a record replaced by other weights has none (:meth:`lvae_lib.results.Store.write_files` drops them)."""
    store = results.Store(results_dir, budget)
    done = set(store.checks()["key"].astype(str))
    recs = [results.read(p.parent) for p in sorted(store.root.rglob("record.json"))] if store.root.exists() else []
    return [r for r in recs if r.has_weights and (refresh or r.key not in done)]


def check_records(budget: str = "paper", results_dir=DEFAULT_RESULTS, device="cpu", data_root=None,
                  refresh: bool = False, progress: bool = True, log=print, time_left=None) -> list[dict]:
    """:func:`weight_checks` for each of :func:`records_to_check`; each record's rows are added to the
    store's checks as they come. ``time_left`` (a callable giving seconds, e.g. in a GPU slot): stop before a
    record when it says 0."""
    store = results.Store(results_dir, budget)
    rows = []
    for rec in records_to_check(budget, results_dir, refresh):
        if time_left is not None and time_left() <= 0:
            log(f"no time left for the weight checks of {rec.run.label} seed {rec.run.seed}")
            break
        data = train_data(rec.run.dataset, data_root).subset(rec.train_cfg["train_subset"], rec.train_cfg["test_subset"])
        new = weight_checks(rec, data, device, progress=progress)
        store.add_checks(new)
        rows += new
        for r in new:
            iv = evidence.normal(r["diff"], r["diff_se"], r["n_images"], "images")
            log(f"{r['label']} seed {r['seed']}, {r['check']}: {r['value']:.3f} against {r['reference']:.3f}, "
                f"difference {iv} ({r['seconds']:.0f} s)")
    return rows
