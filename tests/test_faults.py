"""Faults and bad input: a killed or crashed trainer loses nothing and leaves nothing torn; a second
trainer on one run dir is refused; checkpoints load no code; divergence names the checkpoint on disk."""
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
import torch

from lvae_lib.config import TrainConfig, preset
from lvae_lib.train import CheckpointError, DivergenceError, load_checkpoint, train

sys.path.insert(0, str(Path(__file__).parent))
from test_train import SMALL, synthetic  # noqa: E402

CFG = preset("LVAE+BN+WU", n_layers=2, **SMALL)[0]
ROOT = Path(__file__).resolve().parents[1]


def script(body: str) -> list[str]:
    """A python -c command that has this test module's synthetic data and configs at hand."""
    head = f"""
        import os, signal, sys, time, torch
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_train import SMALL, synthetic
        from lvae_lib.config import TrainConfig, preset
        from lvae_lib import train as T
        CFG = preset("LVAE+BN+WU", n_layers=2, **SMALL)[0]
    """
    return [sys.executable, "-c", textwrap.dedent(head) + textwrap.dedent(body)]


def test_a_kill_while_the_first_finetuning_checkpoint_is_written_leaves_nothing_torn(tmp_path):
    base_tc = TrainConfig(epochs=2, batch_size=64, checkpoint_every=1)
    train(CFG, base_tc, synthetic(), tmp_path / "base", progress=False)
    ft = TrainConfig(epochs=2, batch_size=64, checkpoint_every=1, mc_samples=2, lr=5e-4)
    # the first checkpoint of the fine-tuning run: half written, then SIGKILL (as a crash or OOM kill would)
    killed = subprocess.run(script(f"""
        real = torch.save
        def torn(obj, f):
            import io
            buf = io.BytesIO(); real(obj, buf); f.write(buf.getvalue()[: len(buf.getvalue()) // 2]); f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        torch.save = torn
        ft = TrainConfig(epochs=2, batch_size=64, checkpoint_every=1, mc_samples=2, lr=5e-4)
        T.train(CFG, ft, synthetic(), {str(tmp_path / 'ft')!r}, progress=False,
                init_from={str(tmp_path / 'base' / 'checkpoint.pt')!r})
    """), cwd=ROOT, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (tmp_path / "ft" / "checkpoint.pt").exists()  # the torn bytes never took the checkpoint's name
    model, st = train(CFG, ft, synthetic(), tmp_path / "ft", progress=False, init_from=tmp_path / "base" / "checkpoint.pt")
    clean, st_clean = train(CFG, ft, synthetic(), tmp_path / "ft-clean", progress=False,
                            init_from=tmp_path / "base" / "checkpoint.pt")
    torch.testing.assert_close(model.state_dict(), clean.state_dict(), rtol=0, atol=0)


def test_a_second_trainer_on_one_run_dir_is_refused_until_the_first_dies(tmp_path):
    holder = subprocess.Popen(script(f"""
        tc = TrainConfig(epochs=10_000, batch_size=64, checkpoint_every=1)
        T.train(CFG, tc, synthetic(), {str(tmp_path)!r}, progress=False)
    """), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while not (tmp_path / "checkpoint.pt").exists():  # it holds the dir and has written a checkpoint
            assert holder.poll() is None and time.time() < deadline, holder.stderr.read().decode()
            time.sleep(0.2)
        tc = TrainConfig(epochs=10_000, batch_size=64, checkpoint_every=1)
        with pytest.raises(CheckpointError, match=rf"{tmp_path} is in use by another trainer \(pid {holder.pid}\)"):
            train(CFG, tc, synthetic(), tmp_path, progress=False)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the kernel drops a dead process's lock: the run resumes from the checkpoint the killed trainer left
    epoch = load_checkpoint(tmp_path / "checkpoint.pt")["epoch"]
    _, st = train(CFG, TrainConfig(epochs=10_000, batch_size=64, checkpoint_every=1), synthetic(), tmp_path,
                  progress=False, stop_after=epoch + 1)
    assert st["epoch"] == epoch + 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary file left behind


def test_a_checkpoint_that_would_run_code_is_refused_naming_it(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    bad = tmp_path / "checkpoint.pt"
    torch.save({"model": Payload()}, bad)
    with pytest.raises(CheckpointError, match=rf"cannot read the checkpoint {bad}"):
        train(CFG, TrainConfig(epochs=1, batch_size=64), synthetic(), tmp_path, progress=False)
    assert not (tmp_path / "ran").exists()
    (tmp_path / "checkpoint.pt").write_bytes(b"\x80\x02 torn")
    with pytest.raises(CheckpointError, match=r"move it away"):
        train(CFG, TrainConfig(epochs=1, batch_size=64), synthetic(), tmp_path, progress=False)


def test_a_huge_learning_rate_stops_with_an_exploding_loss_not_done(tmp_path):
    tc = TrainConfig(epochs=30, batch_size=64, lr=1e4)  # huge but finite: once ended "done" at ELBO -1.9e27
    with pytest.raises(DivergenceError, match=r"(exploding|non-finite) loss.* at epoch \d+ .*(no checkpoint|kept at)"):
        train(CFG, tc, synthetic(), tmp_path, progress=False)


def test_divergence_names_the_checkpoint_that_is_on_disk(tmp_path, monkeypatch):
    from lvae_lib import step as S

    calls, real = [0], S.training_loss

    def loss(*a, **k):  # from the 7th epoch on (6 batches an epoch), the loss explodes
        calls[0] += 1
        value, out = real(*a, **k)
        return (value * 1e12 if calls[0] > 36 else value), out

    monkeypatch.setattr(S, "training_loss", loss)
    tc = TrainConfig(epochs=20, batch_size=64, checkpoint_every=4)
    with pytest.raises(DivergenceError, match=rf"exploding loss .* at epoch 7 .*of epoch 4, is kept at {tmp_path}"):
        train(CFG, tc, synthetic(), tmp_path, progress=False)  # epochs 5-6 were never written
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 4


@pytest.mark.parametrize("argv, message", [
    (["train", "RUN", "--eval-every", "0"], "argument --eval-every: must be an integer >= 1, got 0"),
    (["train", "RUN", "--batch-size", "0"], "argument --batch-size: must be an integer >= 1, got 0"),
    (["train", "RUN", "--train-subset", "-100"], "argument --train-subset: must be an integer >= 0, got -100"),
    (["train", "RUN", "--lr", "inf"], "argument --lr: must be a finite number > 0, got inf"),
    (["train", "RUN", "--layers", "6"], "argument --layers: must be an integer between 1 and 5, got 6"),
    (["evaluate", "RUN", "--k", "0"], "argument --k: must be an integer >= 1, got 0"),
    (["evaluate", "RUN", "--test-subset", "-1"], "argument --test-subset: must be an integer >= 0, got -1"),
    (["run", "fig2", "--threads", "0"], "argument --threads: must be an integer >= 1, got 0"),
    (["run", "fig2", "--seed", "1.5"], "argument --seed: must be an integer, got '1.5'"),
    (["run", "fig2", "--device", "cuda:7"] if not torch.cuda.is_available() or torch.cuda.device_count() < 8
     else ["run", "fig2", "--device", "tpu"], "argument --device: "),
])
def test_bad_values_are_refused_up_front_in_one_line(argv, message, tmp_path, capsys):
    from lvae_lib.cli import main

    with pytest.raises(SystemExit) as e:
        main([str(tmp_path) if a == "RUN" else a for a in argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err.splitlines()[-1]
    assert not list(tmp_path.iterdir())  # nothing was started or written


def test_a_config_refuses_negative_subsets_and_a_zero_eval_interval():
    for bad in (dict(train_subset=-100), dict(test_subset=-1), dict(eval_every=0), dict(lr=float("nan"))):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrainConfig(**bad)


def test_notebook_parameters_take_the_type_of_their_default():
    from lvae_lib.notebooks import typed_parameters

    nb = ROOT / "notebooks" / "fig3_layers.ipynb"
    assert typed_parameters(nb, {"seed": "1", "progress": "true", "budget": "cpu"}) == \
        {"seed": 1, "progress": True, "budget": "cpu"}  # papermill alone would pass the texts "1" and "true"
    with pytest.raises(ValueError, match=r"seed='1.5' .* expected int"):
        typed_parameters(nb, {"seed": "1.5"})
    with pytest.raises(ValueError, match=r"no parameter 'sed'"):
        typed_parameters(nb, {"sed": "1"})


def test_a_seed_of_the_wrong_type_is_refused_before_any_training(tmp_path):
    from lvae_lib.query import ensure

    for bad in ("0", 1.5, -1):  # "0": what `-p seed=0` used to pass; every record then looked missing
        with pytest.raises(ValueError, match="seed must be an integer >= 0"):
            ensure("fig3", "auto", results_dir=tmp_path, work_dir=tmp_path, seed=bad, progress=False)
    assert not list(tmp_path.iterdir())


def test_a_sweep_into_a_folder_it_cannot_write_fails_before_training(tmp_path):
    from lvae_lib.sweep import sweep

    blocked = tmp_path / "results"
    blocked.write_text("a file where the results folder should be")
    with pytest.raises(PermissionError, match=f"cannot write records into {blocked}"):
        sweep("fig2", "smoke", results_dir=blocked, work_dir=tmp_path / "runs", progress=False)
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("checkpoint.pt"))


def test_evaluating_a_subset_never_overwrites_the_full_evaluation(tmp_path, mnist_root):
    from safetensors.torch import save_file

    from lvae_lib.cli import main
    from lvae_lib.model import LadderVAE

    # a trained-looking run dir, as `train` leaves it (a smoke model on MNIST)
    cfg = preset("VAE", n_layers=1)[0]
    save_file(LadderVAE(cfg).state_dict(), tmp_path / "model.safetensors")
    import json
    from lvae_lib.config import to_dict

    (tmp_path / "config.json").write_text(json.dumps({"model": to_dict(cfg), "dataset": "mnist"}))
    (tmp_path / "eval_L5.json").write_text('{"test_LK": -85.0, "n_test": 10000}')
    assert main(["evaluate", str(tmp_path), "--k", "5", "--test-subset", "1"]) == 0
    assert json.loads((tmp_path / "eval_L5.json").read_text())["test_LK"] == -85.0
    assert json.loads((tmp_path / "eval_L5_first1.json").read_text())["n_test"] == 1


# ----------------------------------------------------------------------------- the processed data cache
def test_a_bad_cache_is_rebuilt_with_one_warning_never_used(tmp_path, monkeypatch, mnist_root):
    import numpy as np

    from lvae_lib import data as D

    monkeypatch.setenv(D.ENV_CACHE, str(tmp_path))
    x, _ = D.load_dataset("mnist", "test", root=mnist_root)
    cache = tmp_path / "processed" / f"mnist-v{D._CACHE_VERSION}.npz"
    with np.load(cache) as f:
        arrays = dict(f)
    arrays["x_test"] = arrays["x_test"].copy()
    arrays["x_test"][0, :50] = 255  # valid, but altered
    np.savez(cache, **arrays)
    for damage in (None, b"", b"PK\x03\x04 truncated"):
        if damage is not None:
            cache.write_bytes(damage)
        with pytest.warns(UserWarning, match=rf"ignoring the processed cache {cache}: .*rebuilding"):
            again, _ = D.load_dataset("mnist", "test", root=mnist_root)
        assert torch.equal(again, x)  # the altered or torn arrays were not used
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # and the rebuilt cache is trusted again, silently
            D.load_dataset("mnist", "test", root=mnist_root)


def test_two_processes_building_one_cache_at_once_both_succeed(tmp_path, mnist_root):
    code = ("import sys; from lvae_lib import data as D; x, _ = D.load_dataset('mnist', 'test', root=sys.argv[1]); "
            "print(float(x.sum()))")
    env = {**os.environ, "LVAE_CACHE_DIR": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", code, mnist_root], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-500:] for o in outs]
    assert outs[0][0] == outs[1][0]
    assert not [p for p in (tmp_path / "processed").iterdir() if p.name.startswith(".")]  # no temporary files left


def test_advice_on_a_bad_file_works_offline_and_spares_the_users_folder(tmp_path, monkeypatch):
    from lvae_lib import data as D

    monkeypatch.setenv(D.ENV_CACHE, str(tmp_path / "cache"))
    spec = D.FILES["mnist-test-labels"]
    for where in (tmp_path / "mine", tmp_path / "cache"):
        p = where / spec.path
        p.parent.mkdir(parents=True)
        p.write_bytes(b"truncated")
        with pytest.raises(D.DataError) as e:
            D.verify(p, spec)
        msg = str(e.value)
        if where.name == "mine":
            assert "never changes" in msg and "delete" not in msg.lower()
        else:
            assert "needs internet access" in msg and "offline" in msg


# ----------------------------------------------------------------------------- committed records
def test_a_hand_edited_or_misplaced_record_is_named_and_not_used(tmp_path):
    import json
    import shutil

    from lvae_lib import claims, experiments as E, results
    from lvae_lib.results import BadRecord, Store

    b = E.get_budget("smoke")
    lv, va = E.Run("mnist", "LVAE+BN+WU", 5), E.Run("mnist", "VAE+BN+WU", 5)
    for r in (lv, va):  # copies of two committed records
        shutil.copytree(Store(E.DEFAULT_RESULTS, "smoke").path(r, r.key(b)), Store(tmp_path, "smoke").path(r, r.key(b)))
    store = Store(tmp_path, "smoke")
    assert len(store.table(E.keyed([lv, va], b))) == 2
    f = store.path(lv, lv.key(b)) / "record.json"
    rec = json.loads(f.read_text())
    rec["summary"]["test_LK"] += 500.0  # a hand edit that would flip "LVAE beats the best VAE"
    f.write_text(json.dumps(rec, indent=1))
    with pytest.raises(BadRecord, match=re.escape(f"{store.path(lv, lv.key(b))}: record.json changed after the record was written")):
        store.load(lv, lv.key(b))
    with pytest.warns(UserWarning, match="checksum mismatch"):
        recs, bad = store.records(E.keyed([lv, va], b))
    df = results.frame(recs)
    assert list(df["variant"]) == ["VAE+BN+WU"] and list(bad) == [lv] and "checksum mismatch" in bad[lv]
    assert claims.decide(df).set_index("claim").loc["... and on test L_K, the estimate of log p(x)", "verdict"] == "not run"
    # a record copied into another model's folder is named, not shown as NaN
    shutil.rmtree(store.path(lv, lv.key(b)))
    shutil.copytree(store.path(va, va.key(b)), store.path(lv, lv.key(b)))
    with pytest.raises(BadRecord, match=r"is that of VAE\+BN\+WU-L5-\w+, not of LVAE\+BN\+WU-L5"):
        store.load(lv, lv.key(b))
    (store.path(va, va.key(b)) / "arrays.npz").write_bytes(b"edited")
    with pytest.raises(BadRecord, match="arrays.npz changed"):
        store.load(va, va.key(b))


def test_every_committed_record_is_sealed_and_intact():
    from lvae_lib import experiments as E
    from lvae_lib.results import check

    import json

    recs = sorted(E.DEFAULT_RESULTS.glob("*/*/*/record.json"))
    assert recs
    for f in recs:
        check(f.parent, json.loads(f.read_text()))  # raises, naming the record, if any file changed


def test_every_committed_record_reads_as_a_typed_record_under_its_key():
    """The one reader (results.read -> Record) takes every committed record, finds it in the folder of
    its run's key at today's configs, and its one writer gives back exactly the JSON on disk."""
    import json

    from lvae_lib import experiments as E
    from dataclasses import replace

    from lvae_lib.results import Record, Store, read

    recs = sorted(E.DEFAULT_RESULTS.glob("*/*/*/record.json"))
    from lvae_lib.config import PRECISIONS

    runs = {(r.dataset, r.label, r.key(b)): r for b in E.BUDGETS.values() for p in PRECISIONS
            for s in E.SEEDS for r in (replace(x, seed=s, precision=p) for x in E.runs_for(list(E.FIGURES)))}  # the studies too
    for f in recs:
        rec = read(f.parent)
        assert rec.to_json() == json.loads(f.read_text()), f
        assert Record.from_json(rec.to_json()) == rec
        run = runs[(rec.run.dataset, rec.run.label, rec.key)]  # KeyError: its key no longer matches its config
        assert run.seed == rec.run.seed and Store(E.DEFAULT_RESULTS, rec.budget).path(run, rec.key) == f.parent
        assert rec.epochs == E.BUDGETS[rec.budget].epochs(rec.run.dataset) + (
            E.BUDGETS[rec.budget].finetune_epochs if rec.run.finetune else 0)
    with pytest.raises(ValueError, match="not a record"):
        Record.from_json({"run": {}, "summary": {}, "surprise": 1})


@pytest.mark.parametrize("says", ["basic_ios::clear: iostream error", "[enforce fail at inline_container.cc:672] . "
                                                                    "unexpected pos 3520 vs 3408"])
def test_a_full_disk_while_checkpointing_names_the_path(tmp_path, monkeypatch, says):
    from lvae_lib import train as T

    def full(obj, f):
        raise RuntimeError(says)  # what torch.save says on a full disk

    monkeypatch.setattr(T.torch, "save", full)
    with pytest.raises(CheckpointError, match=rf"cannot write {tmp_path / 'checkpoint.pt'}: no space left on the device"):
        train(CFG, TrainConfig(epochs=1, batch_size=64), synthetic(), tmp_path, progress=False)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_evaluate_into_a_read_only_run_dir_refuses_before_computing(tmp_path, monkeypatch, capsys):
    from lvae_lib import cli

    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setattr(cli.os, "access", lambda p, mode: False)  # as a read-only folder is (root ignores modes)
    assert cli.main(["evaluate", str(tmp_path), "--k", "5"]) == 2
    assert f"cannot write {tmp_path / 'eval_L5.json'}" in capsys.readouterr().err


def test_evaluate_reads_a_record_that_keeps_weights_and_never_writes_into_it(tmp_path, capsys, mnist_root):
    """`evaluate` takes a record folder too: its model through the one loader, its result printed (or
    written to --out), the sealed folder untouched; a record without weights is named."""
    import json
    from dataclasses import replace

    from test_results import fake_record

    from lvae_lib import cli, results
    from lvae_lib import experiments as E
    from lvae_lib.config import preset, to_dict
    from lvae_lib.data import train_data
    from lvae_lib.model import LadderVAE
    from lvae_lib.objectives import iw_bound

    run = E.Run("mnist", "VAE", 1)
    cfg = preset("VAE", n_layers=1)[0]
    st = results.Store(tmp_path / "res", "smoke")
    rec = replace(fake_record(run, "k1"), model_cfg=to_dict(cfg))
    folder = st.write(run, "k1", rec, [{"epoch": 1}], {}, model=LadderVAE(cfg))
    before = sorted((p.name, p.read_bytes()) for p in folder.iterdir())
    torch.manual_seed(7)
    assert cli.main(["evaluate", str(folder), "--k", "3", "--test-subset", "4", "--data-dir", mnist_root]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert sorted((p.name, p.read_bytes()) for p in folder.iterdir()) == before  # nothing written into it
    torch.manual_seed(7)  # the same model, images and importance samples, computed here
    model = results.read(folder).load_model()
    x = train_data("mnist", mnist_root).x_test[:4]
    assert out["n_test"] == 4 and out["k"] == 3
    assert out["test_LK"] == pytest.approx(float(iw_bound(model, x, k=3, batch_size=100).mean()), abs=1e-4)
    from lvae_lib import analysis  # active units by the paper's measure: units with test KL above 0.01 nats
    assert out["active_units"] == analysis.active_units_kl(analysis.unit_kl(model, x))
    assert len(out["active_units_burda"]) == cfg.n_layers
    assert cli.main(["evaluate", str(folder), "--k", "3", "--test-subset", "4", "--data-dir", mnist_root,
                     "--out", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["n_test"] == 4
    bare = st.write(E.Run("mnist", "VAE", 2), "k2", fake_record(E.Run("mnist", "VAE", 2), "k2"), [{"epoch": 1}], {})
    assert cli.main(["evaluate", str(bare), "--data-dir", mnist_root]) == 2
    assert "keeps no model.safetensors" in capsys.readouterr().err


def test_evaluate_names_a_broken_config(tmp_path, capsys):
    from lvae_lib.cli import main

    (tmp_path / "config.json").write_text("{ torn")
    assert main(["evaluate", str(tmp_path)]) == 2
    assert f"{tmp_path / 'config.json'} is not a config written by `train`" in capsys.readouterr().err


def test_a_figure_whose_records_are_all_missing_says_so_instead_of_failing(tmp_path):
    from lvae_lib import claims, experiments as E, plots, report
    from lvae_lib.results import Store

    df = Store(tmp_path, "cpu").table(E.keyed(E.runs_for("fig3"), E.get_budget("cpu")))  # as when the data cannot be found
    assert "variant" in df.columns and not len(df)  # once: KeyError: 'variant'
    for make in (lambda: plots.layers_figure(df), lambda: plots.training_curves({"cpu": report.curves(df)}),
                 lambda: plots.layer_kl_figure(df), lambda: plots.unit_kl_figure(report.snapshots(df)),
                 lambda: plots.pca_figure(*report.projections(df)), lambda: report.layers_table(df),
                 lambda: report.mnist_text_compare(df), lambda: claims.decide(df, "fig3")):
        make()


def test_an_exploding_kl_under_warm_up_is_caught(tmp_path, monkeypatch):
    """With beta = 0 the loss has no KL; a learning rate that blows the KL up must still stop the run."""
    from lvae_lib import step as S

    real = S.training_loss

    def loss(model, x, beta, *a):
        value, out = real(model, x, beta, *a)
        out = {**out, "elbo": out["elbo"] - 1e12}  # the KL explodes; the warm-up loss does not see it
        return value, out

    monkeypatch.setattr(S, "training_loss", loss)
    with pytest.raises(DivergenceError, match="exploding loss .* at epoch 1"):
        train(CFG, TrainConfig(epochs=3, batch_size=64, warmup_epochs=3), synthetic(), tmp_path, progress=False)


def test_data_must_be_finite_and_in_range(tmp_path):
    import numpy as np

    from lvae_lib.data import DataError, check_pixels

    x = np.random.default_rng(0).random((10, 784), dtype=np.float32)
    y = np.zeros(10, np.int64)
    check_pixels(x, y, "mnist", "train")
    for bad, msg in ((np.where(x > 0.5, np.nan, x), "NaN or infinite"), (x * 2, r"not \[0, 1\]"),
                     (np.zeros_like(x), "every pixel is 0"), (x[:, :100], "expected \\[images, 784\\]")):
        with pytest.raises(DataError, match=msg):
            check_pixels(bad, y, "mnist", "test")


def test_a_record_missing_a_file_is_called_missing_and_refresh_retrains_it(tmp_path):
    import numpy as np

    from lvae_lib import experiments as E
    from lvae_lib.results import BadRecord, Store

    sys.path.insert(0, str(Path(__file__).parent))
    from test_results import fake_record

    b = E.get_budget("smoke")
    run = E.Run("mnist", "VAE", 1)
    st = Store(tmp_path, "smoke")
    st.write(run, run.key(b), fake_record(run, run.key(b)), [{"epoch": 1}], {"test_LK_per_image": np.zeros(3)})
    (st.path(run, run.key(b)) / "arrays.npz").unlink()
    with pytest.raises(BadRecord, match="arrays.npz is missing.*--refresh"):
        st.load(run, run.key(b))
    assert st.missing(E.keyed([run], b)) == [] and st.missing(E.keyed([run], b), refresh=True) == [run]
    assert "arrays.npz is missing" in st.stale(E.keyed([run], b))[run]


def test_refreshing_a_fine_tuned_run_refreshes_its_siblings_so_that_they_share_a_base(tmp_path):
    """Table 1 compares ft with ft-control and ft-iw10 with ft from one base model: a refresh that retrains one
    of them (its record has no per-image estimates) retrains every fine-tuned run of that base it was given,
    though their records have them; not the base, nor the runs of another seed, nor anything without refresh."""
    import numpy as np

    from lvae_lib import experiments as E
    from lvae_lib.results import Store

    sys.path.insert(0, str(Path(__file__).parent))
    from test_results import fake_record

    b = E.get_budget("smoke")
    st = Store(tmp_path, "smoke")
    runs = [E.Run("mnist", "LVAE+BN+WU", 5, ft, seed=s) for s in (0, 1) for ft in ("", "ft", "ft-iw10", "ft-control")]
    for r in runs:
        per = {} if (r.finetune == "ft" and r.seed == 0) else {"test_LK_per_image": np.zeros(3)}
        st.write(r, r.key(b), fake_record(r, r.key(b)), [{"epoch": 1}], per)
    assert st.missing(E.keyed(runs, b)) == []
    assert [(r.label, r.seed) for r in st.missing(E.keyed(runs, b), refresh=True)] == [
        ("LVAE+BN+WU-L5-ft", 0), ("LVAE+BN+WU-L5-ft-iw10", 0), ("LVAE+BN+WU-L5-ft-control", 0)]
    # a missing fine-tuned run is trained from whatever base is there: it does not pull its siblings in
    runs.append(E.Run("mnist", "LVAE+BN+WU", 5, "ft", seed=2))
    assert [(r.label, r.seed) for r in st.missing(E.keyed(runs[4:], b), refresh=True)] == [("LVAE+BN+WU-L5-ft", 2)]


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "lvae_lib", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=Path(__file__).resolve().parents[1])


@pytest.mark.slow
def test_extending_a_finished_run_or_a_torn_model_file_is_one_line(tmp_path, mnist_root):
    small = ["--preset", "VAE", "--layers", "1", "--train-subset", "256", "--test-subset", "100", "--data-dir", mnist_root]
    assert _cli("train", tmp_path / "run", "--epochs", "1", *small).returncode == 0
    out = _cli("train", tmp_path / "run", "--epochs", "2", *small)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "written for other configs" in out.stderr and "give a new run dir" in out.stderr
    weights = tmp_path / "run" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # torn
    out = _cli("evaluate", tmp_path / "run", "--k", "2", "--data-dir", mnist_root)
    assert out.returncode == 2 and "Traceback" not in out.stderr and str(weights) in out.stderr


def test_a_folder_where_a_data_file_should_be_is_named(tmp_path):
    from lvae_lib.data import FILES, DataError, fetch

    (tmp_path / FILES["mnist-train-images"].path).mkdir(parents=True)
    with pytest.raises(DataError, match="is a folder where the data file mnist/train-images-idx3-ubyte.gz should be"):
        fetch("mnist-train-images", tmp_path, allow_download=False)


def test_a_full_disk_while_writing_a_record_or_the_cache_names_it(tmp_path, monkeypatch):
    import numpy as np

    from lvae_lib import data as Dm
    from lvae_lib import experiments as E
    from lvae_lib.results import Store

    sys.path.insert(0, str(Path(__file__).parent))
    from test_results import fake_record

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    run = E.Run("mnist", "VAE", 1)
    monkeypatch.setattr(np, "savez_compressed", full)
    with pytest.raises(OSError, match=r"cannot write the record .*VAE-L1-k1: No space left on device"):
        Store(tmp_path, "smoke").write(run, "k1", fake_record(run, "k1"), [{"epoch": 1}], {"a": np.zeros(2)})
    monkeypatch.setattr(np, "savez", full)
    with pytest.raises(Dm.DataError, match=r"cannot write the processed cache .*: No space left on device"):
        Dm._atomic_write(tmp_path / "x.npz", lambda p: np.savez(p, a=np.zeros(2)))
    assert not list(tmp_path.glob(".x.npz*"))


def test_a_notebook_that_cannot_write_its_records_says_so_before_training(tmp_path, monkeypatch):
    from lvae_lib import query, results

    def read_only(self):
        raise PermissionError(f"cannot write records into {self.root}: Read-only file system")

    monkeypatch.setattr(results.Store, "check_writable", read_only)
    monkeypatch.setattr(query.runner, "run_one", lambda *a, **k: pytest.fail("trained before checking"))
    monkeypatch.setattr(query, "train_data", lambda *a, **k: None)
    with pytest.raises(PermissionError, match="Read-only"):
        query.ensure("fig2", "smoke", results_dir=tmp_path, progress=False)


def test_a_notebook_refuses_hours_of_cpu_training_and_says_what_to_run(tmp_path, monkeypatch):
    from lvae_lib import query

    monkeypatch.setattr(query.runner, "run_one", lambda *a, **k: pytest.fail("trained for hours"))
    monkeypatch.setattr(query, "train_data", lambda *a, **k: None)
    with pytest.raises(RuntimeError, match=r"fig3 would train 19 run\(s\) for about \d+ h .*lvae_lib run fig3 --budget paper"):
        query.ensure("fig3", "paper", results_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="device='bogus'"):
        query.ensure("fig3", "paper", device="bogus", results_dir=tmp_path, progress=False)


def test_a_notebook_over_stale_records_names_them_instead_of_drawing_nothing(tmp_path, monkeypatch):
    import json

    import numpy as np

    from lvae_lib import experiments as E
    from lvae_lib import query
    from lvae_lib.results import Store

    sys.path.insert(0, str(Path(__file__).parent))
    from test_results import fake_record

    b = E.get_budget("smoke")
    st = Store(tmp_path, "smoke")
    for run in E.runs_for("fig2"):
        st.write(run, run.key(b), fake_record(run, run.key(b)), [{"epoch": 1}], {"a": np.zeros(2)})
    old = st.path(E.runs_for("fig2")[0], E.runs_for("fig2")[0].key(b)) / "record.json"
    rec = json.loads(old.read_text())
    del rec["checksums"]  # an older schema
    old.write_text(json.dumps(rec))
    with pytest.raises(RuntimeError, match=r"1 record\(s\) of fig2 .* no checksums.*run fig2 --budget smoke --refresh"):
        query.ensure("fig2", "smoke", results_dir=tmp_path, progress=False)


def test_ctrl_c_in_evaluate_says_l_k_starts_anew(monkeypatch, capsys):
    from lvae_lib import cli

    def interrupted(a):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_evaluate", interrupted)
    assert cli.main(["evaluate", "RUN"]) == 130
    err = capsys.readouterr().err
    assert "start it anew" in err and "checkpoints" not in err


def test_a_ray_cluster_that_is_not_there_is_one_line_and_ray_keeps_our_sigterm(monkeypatch):
    import types

    from lvae_lib import sweep as S

    calls = []

    def init(**kw):
        calls.append(kw)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as ray.init does
        if kw.get("address") == "nowhere:1":
            raise ConnectionError("Could not find any running Ray instance")

    def remote(f):
        raise RuntimeError("stop here")

    fake = types.SimpleNamespace(is_initialized=lambda: False, init=init, remote=remote)
    monkeypatch.setitem(sys.modules, "ray", fake)
    before = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(ConnectionError, match="no Ray cluster at --address nowhere:1 .*ray start --head"):
            S._run_ray([], None, None, None, None, None, device="cpu", threads=1, num_gpus=0, retries=0,
                       address="nowhere:1", data_root=None, compile=False)
        with pytest.raises(RuntimeError, match="stop here"):
            S._run_ray([], None, None, None, None, None, device="cpu", threads=1, num_gpus=0, retries=0,
                       address=None, data_root=None, compile=False)
        assert signal.getsignal(signal.SIGTERM) is S._interrupt
    finally:
        signal.signal(signal.SIGTERM, before)


@pytest.mark.slow
def test_a_full_disk_while_train_writes_its_outputs_names_the_file(tmp_path, monkeypatch, capsys, mnist_root):
    from lvae_lib import cli

    write_bytes = Path.write_bytes

    def full(self, data):  # the disk fills while the weights are written
        if self.name.startswith(".model.safetensors."):
            write_bytes(self, data[:10])
            raise OSError(28, "No space left on device")
        return write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    code = cli.main(["train", str(tmp_path / "run"), "--preset", "VAE", "--layers", "1", "--epochs", "1",
                     "--train-subset", "256", "--test-subset", "100", "--data-dir", mnist_root])
    err = capsys.readouterr().err
    assert code == 1 and f"cannot write {tmp_path / 'run' / 'model.safetensors'}: No space left on device" in err
    assert not (tmp_path / "run" / "model.safetensors").exists()
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]
