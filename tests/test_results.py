"""Results store and registry: shared runs are one record, writes are atomic, names are checked."""
import json
from dataclasses import replace
import os

import numpy as np
import pytest

from pathlib import Path

from lvae_lib import experiments as E, paper
from lvae_lib.query import resolve_budget
from lvae_lib.results import WEIGHTS, Provenance, Record, RunInfo, Store, Summary


def fake_record(run, key, budget="smoke", **summary) -> Record:
    """A record of ``run`` with made-up numbers, for tests of the store (never of a claim)."""
    s = {"train_L1": -90.0, "test_L1": -91.0, "test_LK": -88.0, "K": 10, "active_units": [1], "layer_kl": [1.0],
         **summary}
    return Record(run=RunInfo(run.dataset, run.dataset, run.variant, run.layers, run.finetune, run.seed, run.label),
                  budget=budget, key=key, model_cfg={}, train_cfg={"epochs": 2}, finetune_cfg=None,
                  summary=Summary(**s), provenance=Provenance(1.0, 1.0, "cpu", "t", "abc", 1, "2026-01-01"))


def test_registry_covers_every_figure_and_shares_runs():
    assert set(E.FIGURES) - set(E.STUDIES) == {"fig2", "fig3", "fig4", "fig5", "fig6", "fig7", "fig8", "fig9_10",
                                               "table1", "table2"}
    assert not {r.variant for r in E.runs_for("all")} & {v for t in E.STUDIES for v in (r.variant for r in E.FIGURES[t])
                                                        if not E.VARIANTS[v].paper}  # "all" is the paper's
    assert len(E.FIGURES["fig3"]) == 19  # 4 variants x 5 depths, no 1-layer LVAE
    b = E.get_budget("cpu")
    keys3 = {r.key(b) for r in E.FIGURES["fig3"]}
    assert {r.key(b) for r in E.FIGURES["fig5"]} <= keys3  # Fig. 5 reuses Fig. 3's 5-layer runs
    assert len({r.key(b) for r in E.runs_for("all")}) == len(E.runs_for("all"))
    ft = E.Run("mnist", "LVAE+BN+WU", 5, "ft")
    assert ft.key(b) != ft.base().key(b) and ft.finetune_config(b).mc_samples == 10
    assert E.Run("mnist", "LVAE+BN+WU", 5, "ft-iw10").finetune_config(b).iw_samples == 10
    # warm-up: 10% of training where the variant uses it, none otherwise
    assert E.Run("mnist", "VAE+BN+WU", 3).configs(b)[1].warmup_epochs == 20
    assert E.Run("mnist", "VAE+BN", 3).configs(b)[1].warmup_epochs == 0
    assert E.Run("mnist", "VAE", 3).configs(E.get_budget("paper"))[1].epochs == 2000
    with pytest.raises(KeyError, match="resolve_budget"):
        E.get_budget("default")
    with pytest.raises(KeyError, match="unknown budget"):
        E.get_budget("gpu")
    with pytest.raises(KeyError, match="unknown figure"):
        E.runs_for("fig1")


def test_paper_numbers_are_the_papers():
    assert dict((n, v) for n, v, _ in paper.TABLE1)["LVAE, 5-layer"] == -82.12
    assert paper.TABLE2["OMNIGLOT"]["LVAE+BN+WU"][4] == -102.11 and paper.TABLE2["NORB"]["VAE"][0] == 2741


def test_store_writes_atomically(tmp_path, monkeypatch):
    st = Store(tmp_path, "smoke")
    run = E.Run("mnist", "VAE", 1)
    assert not st.complete(run, "k1")
    # a write that fails half-way leaves no record that reads as complete
    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(OSError):
        st.write(run, "k1", fake_record(run, "k1"), [{"epoch": 1}], {"a": np.zeros(2)})
    assert not st.complete(run, "k1") and not list(tmp_path.rglob("record.json"))
    monkeypatch.undo()
    p = st.write(run, "k1", fake_record(run, "k1", test_LK=-80.5),
                 [{"epoch": 1, "train_elbo": -1.5, "commit": "15e4311"}], {"a": np.arange(3)})
    assert st.complete(run, "k1") and p.name == "VAE-L1-k1"
    assert st.load(run, "k1").summary.test_LK == -80.5 and st.load(run, "k1").path == str(p)
    assert st.metrics(run, "k1")[["train_elbo", "commit"]].values.tolist() == [[-1.5, "15e4311"]]
    assert st.arrays(run, "k1")["a"].tolist() == [0, 1, 2]
    assert not [q for q in p.parent.iterdir() if q.name.startswith(".")]  # no temporary folders left
    umask = os.umask(0)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o777 & ~umask  # not the private drwx------ of a temporary folder


def test_committed_records_are_small_and_labelled():
    """Records, arrays and curves stay under 50 MB together; weights (about 7 MB a model, fp32) are kept only
    by the budgets that keep them (the paper's), so they are bounded by the number of paper-budget models."""
    root = E.DEFAULT_RESULTS
    recs = list(root.rglob("record.json"))
    assert recs, "no committed records under results/"
    files = [f for f in root.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files if f.name != WEIGHTS) < 50e6
    for w in (f for f in files if f.name == WEIGHTS):
        assert w.stat().st_size < 8e6, w
        assert E.get_budget(w.relative_to(root).parts[0]).keep_weights, f"{w}: its budget does not keep weights"
    for r in recs:
        rec = json.loads(r.read_text())
        assert rec["budget"] == r.relative_to(root).parts[0] and rec["budget"] in E.BUDGETS
        assert {"git_commit", "torch", "device", "wall_seconds"} <= rec["provenance"].keys()


def test_auto_budget_is_the_largest_complete_one_per_figure(tmp_path):
    def fake(runs, budget):
        b = E.get_budget(budget)
        for r in runs:
            Store(tmp_path, budget).write(r, r.key(b), fake_record(r, r.key(b), budget), [], {})

    assert resolve_budget("fig2", "auto", tmp_path) == "smoke"  # nothing committed
    fake(E.FIGURES["fig2"][:3], "cpu")
    assert resolve_budget("fig2", "auto", tmp_path) == "smoke"  # one of four missing
    fake(E.FIGURES["fig2"][3:], "cpu")
    assert resolve_budget("fig2", "auto", tmp_path) == "cpu"
    assert resolve_budget("fig5", "auto", tmp_path) == "cpu"  # same runs
    assert resolve_budget("fig3", "auto", tmp_path) == "smoke"
    fake(E.FIGURES["fig2"], "paper")
    assert resolve_budget("fig2", "auto", tmp_path) == "paper"
    assert resolve_budget("fig2", "cpu", tmp_path) == "cpu"  # an explicit budget is kept
    # NORB never obtained (no record in any budget): table2 is complete with OMNIGLOT alone
    fake([r for r in E.FIGURES["table2"] if r.dataset == "omniglot28"], "cpu")
    assert resolve_budget("table2", "auto", tmp_path) == "cpu"


def test_several_targets_keep_their_order_and_finetuning_waits_only_for_a_missing_base(tmp_path):
    from lvae_lib.sweep import plan_waves

    runs = E.runs_for(["table1", "fig2"])
    assert runs[:4] == E.FIGURES["table1"] and len(runs) == 7  # the 5-layer LVAE once
    b = E.get_budget("cpu")
    store = Store(tmp_path, "cpu")
    first, then = plan_waves(runs, store, b)
    assert [r.label for r in then] == ["LVAE+BN+WU-L5-ft", "LVAE+BN+WU-L5-ft-iw10", "LVAE+BN+WU-L5-ft-control"]
    assert not any(r.finetune for r in first) and first[0] == E.FIGURES["table1"][0]
    base = E.FIGURES["table1"][0]
    store.write(base, base.key(b), fake_record(base, base.key(b), "cpu"), [], {})
    todo = store.missing(E.keyed(runs, b))
    first, then = plan_waves(todo, store, b)
    assert then == [] and [r.label for r in first[:3]] == ["LVAE+BN+WU-L5-ft", "LVAE+BN+WU-L5-ft-iw10",
                                                           "LVAE+BN+WU-L5-ft-control"]
    with pytest.raises(KeyError, match="unknown figure 'fig99'"):
        E.runs_for(["fig2", "fig99"])


def test_finetuning_decays_ten_times_and_checkpoints_every_epoch():
    run = E.Run("mnist", "LVAE+BN+WU", 5, "ft-iw10")
    for name in ("cpu", "paper"):
        ft = run.finetune_config(E.get_budget(name))
        assert ft.epochs // ft.lr_decay_every == 10  # the paper: 2000 epochs, x 0.75 every 200
        assert (ft.mc_samples, ft.iw_samples, ft.checkpoint_every, ft.warmup_epochs) == (10, 10, 1, 0)
    assert run.key(E.get_budget("cpu")) != E.Run("mnist", "LVAE+BN+WU", 5, "ft").key(E.get_budget("cpu"))


def test_figures_draw_the_paper_budgets_models_beside_their_own(tmp_path):
    """shown(beside_paper=True) appends the paper records of a figure's models (once, after the figure's own);
    the figures name each model with its budget then, and draw the paper's as hatched bars. A RecordSet hands
    out plain frames: fresh copies, no attrs, no objects in cells."""
    from lvae_lib import plots, report
    from lvae_lib.query import ensure

    cpu, pap = E.get_budget("cpu"), E.get_budget("paper")
    for r in E.FIGURES["fig5"]:
        Store(tmp_path, "cpu").write(r, r.key(cpu), fake_record(r, r.key(cpu), "cpu", layer_kl=[1.0] * 5), [], {})
    rs = ensure("fig5", "cpu", results_dir=tmp_path, progress=False)
    df = rs.shown()
    assert rs.budget == "cpu" and df.equals(rs.shown(beside_paper=True))  # no paper record yet: the figure as it was
    assert not df.attrs and all(isinstance(p, str) for p in df["path"])
    df.loc[0, "test_LK"] = 0.0
    assert rs.shown().loc[0, "test_LK"] != 0.0  # a reader's edit stays in its copy
    lvae = E.Run("mnist", "LVAE+BN+WU", 5)
    Store(tmp_path, "paper").write(lvae, lvae.key(pap), fake_record(lvae, lvae.key(pap), "paper", layer_kl=[2.0] * 5),
                                   [], {})
    rs = ensure("fig5", "cpu", results_dir=tmp_path, progress=False)
    both = rs.shown(beside_paper=True)
    assert list(both["budget"]) == ["cpu"] * 4 + ["paper"]
    assert list(rs.first_of(("paper", "cpu"))["budget"]) == ["paper"] + ["cpu"] * 3  # each run once, its best budget
    assert list(rs.at("paper")["variant"]) == ["LVAE+BN+WU"] and len(rs.evidence()) == 5
    assert report.shown_as(both, "LVAE+BN+WU", "paper") == "LVAE+BN+WU (2000 epochs)"
    assert report.shown_as(df, "LVAE+BN+WU", "cpu") == "LVAE+BN+WU"  # one budget: the variant alone
    ax = plots.layer_kl_figure(both).axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert labels[-1] == "LVAE+BN+WU, 2000 epochs" and len(labels) == 5
    hatched = [p for p in ax.patches if p.get_hatch()]
    assert len(hatched) == 5 and all(p.get_height() == 2.0 for p in hatched)  # the paper model's 5 layers
    paper_fig = replace(rs, budget="paper")
    assert list(paper_fig.shown(beside_paper=True)["budget"]) == ["paper"]  # at the paper budget: drawn once


def _data_dir():
    from pathlib import Path
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not os.environ.get("LVAE_DATA_DIR") and not shared.exists():
        pytest.skip("needs MNIST: set LVAE_DATA_DIR")
    return os.environ.get("LVAE_DATA_DIR", str(shared))


@pytest.mark.slow
def test_weights_are_kept_where_the_budget_says_and_attached_only_from_the_records_own_checkpoint(tmp_path):
    """A budget with keep_weights writes model.safetensors into the record (under its checksums); the loaded
    model is the trained one; attach_weights adds them to an older record only from its own final checkpoint."""
    import dataclasses

    import torch

    from lvae_lib import results
    from lvae_lib.runner import attach_weights, run_one

    root = _data_dir()
    keep = dataclasses.replace(E.get_budget("smoke"), name="keep", keep_weights=True)
    run = E.Run("mnist", "LVAE+BN+WU", 2)
    rec = run_one(run, keep, tmp_path / "res", tmp_path / "runs", progress=False, data_root=root)
    assert rec.has_weights and results.WEIGHTS in rec.checksums
    model = rec.load_model()
    ck = torch.load(tmp_path / "runs" / "keep" / run.key(keep) / "checkpoint.pt", weights_only=True)
    torch.testing.assert_close(model.state_dict(), ck["model"], rtol=0, atol=0)
    assert not model.training
    # a record of a budget that does not keep them has none, and says how to get them
    plain = dataclasses.replace(keep, name="plain", keep_weights=False)
    rec2 = run_one(run, plain, tmp_path / "res", tmp_path / "runs", progress=False, data_root=root)
    assert not rec2.has_weights
    with pytest.raises(FileNotFoundError, match="keeps no model.safetensors"):
        rec2.load_model()
    # another run's checkpoint is refused; its own is attached without changing a number
    other = E.Run("mnist", "LVAE+BN+WU", 2, seed=1)
    run_one(other, plain, tmp_path / "res", tmp_path / "runs", progress=False, data_root=root)
    with pytest.raises(ValueError, match="not the final checkpoint|does not reproduce"):
        attach_weights(run, plain, tmp_path / "runs" / "plain" / other.key(plain) / "checkpoint.pt", tmp_path / "res",
                       data_root=root)
    attach_weights(run, plain, tmp_path / "runs" / "plain" / run.key(plain) / "checkpoint.pt", tmp_path / "res",
                   data_root=root)
    after = Store(tmp_path / "res", "plain").load(run, run.key(plain))
    assert after.summary == rec2.summary and after.has_weights
    # tampered weights are named by the checksums
    w = Path(after.path) / results.WEIGHTS
    w.write_bytes(w.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(results.BadRecord, match="model.safetensors changed"):
        Store(tmp_path / "res", "plain").load(run, run.key(plain))


def test_committed_paper_records_keep_their_weights():
    from lvae_lib import results
    for rec_json in sorted((E.DEFAULT_RESULTS / "paper").rglob("record.json")):
        rec = results.read(rec_json.parent)
        assert rec.has_weights, f"{rec_json.parent} has no weights"
        m = rec.load_model()
        assert m.cfg.n_layers == rec.run.layers and m.cfg.inference == E.VARIANTS[rec.run.variant].inference


def _writer(root, n, tag):
    run = E.Run("mnist", "VAE", 1)
    st = Store(root, "smoke")
    for i in range(n):
        st.write(run, "k1", fake_record(run, "k1", test_LK=-80.0 - i), [{"epoch": i, "who": tag}],
                 {"a": np.full(50_000, i, np.float32)})


@pytest.mark.slow
def test_a_record_being_replaced_is_never_absent_or_mixed(tmp_path):
    """Two writers replace one record over and over while a reader reads it: every read finds it
    complete, and its summary and arrays from one and the same write."""
    import multiprocessing as mp

    run = E.Run("mnist", "VAE", 1)
    _writer(tmp_path, 1, "first")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(tmp_path, 60, t)) for t in ("a", "b")]
    for p in procs:
        p.start()
    st, reads = Store(tmp_path, "smoke"), 0
    while any(p.is_alive() for p in procs):
        rec = st.load(run, "k1")  # raises if absent, or mixed (its checksums)
        reads += 1
        assert rec.path and (Path(rec.path) / "record.json").exists()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert reads > 10
    assert not [p for p in (tmp_path / "smoke" / "mnist").iterdir() if p.name.startswith(".")]  # nothing left over


@pytest.mark.slow
def test_weight_checks_compare_against_the_record_and_land_once_per_record_and_check(tmp_path):
    """check_records: a model without batch norm gets no batch-norm check (the recomputation leaves it as it
    is); one with batch norm gets it, and recomputed statistics differ from the running averages; L_{k_big} is
    at least L_K of the same samples' first K on average (a larger K never lowers the bound in expectation);
    the rows land in the store's checks, replaced, not repeated."""
    import dataclasses

    from lvae_lib import runner
    from lvae_lib.runner import check_records, run_one

    root = _data_dir()
    keep = dataclasses.replace(E.get_budget("smoke"), name="keep", keep_weights=True)
    for variant in ("VAE", "VAE+BN"):
        run_one(E.Run("mnist", variant, 2), keep, tmp_path / "res", tmp_path / "runs", progress=False, data_root=root)
    old = runner.CHECKS_K_BIG, runner.CHECKS_IMAGES_BIG
    runner.CHECKS_K_BIG, runner.CHECKS_IMAGES_BIG = 40, 100
    try:
        rows = check_records("keep", tmp_path / "res", data_root=root, progress=False, log=lambda *_: None)
    finally:
        runner.CHECKS_K_BIG, runner.CHECKS_IMAGES_BIG = old
    by = {(r["label"], r["check"]): r for r in rows}
    assert set(by) == {("VAE-L2", "k_40"), ("VAE+BN-L2", "k_40"), ("VAE+BN-L2", "bn_recomputed")}
    bn = by[("VAE+BN-L2", "bn_recomputed")]
    assert bn["n_images"] == keep.test_subset and bn["k"] == keep.eval_k and bn["diff"] != 0.0
    for v in ("VAE-L2", "VAE+BN-L2"):
        big = by[(v, "k_40")]
        assert big["n_images"] == 100 and big["diff"] > -3 * big["diff_se"], big
    store = Store(tmp_path / "res", "keep")
    assert len(store.checks()) == 3
    assert check_records("keep", tmp_path / "res", data_root=root, progress=False) == []  # nothing left to check
    store.add_checks([{**by[("VAE-L2", "k_40")], "value": 0.0}])
    again = store.checks()
    assert len(again) == 3 and (again[again.check == "k_40"].value == 0.0).sum() == 1
    # a record written again with the same weights keeps its checks; with other weights (a retrain put in its
    # place through write_files) it loses them, and check-weights picks it again
    import shutil

    from safetensors.torch import load_file, save_file

    from lvae_lib.results import seal

    rec = next(r for r in runner.records_to_check("keep", tmp_path / "res", refresh=True) if r.run.label == "VAE-L2")
    store.write_files(rec.run, rec.key, store.files(rec.run, rec.key))
    assert len(store.checks()) == 3
    retrained = Store(tmp_path / "retrain", "keep")
    shutil.copytree(store.path(rec.run, rec.key), folder := retrained.path(rec.run, rec.key))
    save_file({k: v * 1.01 for k, v in load_file(folder / WEIGHTS).items()}, folder / WEIGHTS)
    seal(folder)
    store.write_files(rec.run, rec.key, retrained.files(rec.run, rec.key))
    assert set(store.checks()["label"]) == {"VAE+BN-L2"} and len(store.checks()) == 2
    assert [r.run.label for r in runner.records_to_check("keep", tmp_path / "res")] == ["VAE-L2"]
