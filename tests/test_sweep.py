"""Sweeps: --jobs N local processes and the Ray backend write the same records as one job; faults are
retried, then reported by name; a second invocation only runs what is missing. (Faults and signals: test_sweep_faults.py.)"""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lvae_lib import experiments as E
from lvae_lib.results import read_metrics
from lvae_lib.sweep import FAULT_ENV, sweep
from lvae_lib.train import cpu_model, git_commit

RUNS = [E.Run("mnist", "VAE", 1), E.Run("mnist", "LVAE+BN+WU", 2), E.Run("mnist", "VAE+BN", 2)]
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("mnist_root")]


def records(results: Path) -> dict:
    """Everything in a record that does not depend on timing or the machine."""
    out = {}
    for rec in sorted(results.rglob("record.json")):
        r = json.loads(rec.read_text())
        m = read_metrics(rec.parent).drop(columns=["seconds"])
        with np.load(rec.parent / "arrays.npz") as a:
            arrays = {k: a[k] for k in a.files}
        out[rec.parent.name] = (r["summary"], r["model_cfg"], r["train_cfg"], m, arrays)
    return out


def assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k][0] == b[k][0], f"{k}: summaries differ"
        assert a[k][1:3] == b[k][1:3]
        pd.testing.assert_frame_equal(a[k][3], b[k][3], check_exact=True)
        for name in a[k][4]:
            np.testing.assert_array_equal(a[k][4][name], b[k][4][name], err_msg=f"{k}/{name}")


@pytest.fixture(scope="module")
def one_job(tmp_path_factory):
    d = tmp_path_factory.mktemp("jobs1")
    rep = sweep(list(RUNS), "smoke", jobs=1, threads=1, results_dir=d / "results", work_dir=d / "runs", progress=False)
    assert not rep.failed and len(rep.done) == 3
    return d


def test_two_jobs_write_the_same_records_as_one(one_job, tmp_path):
    rep = sweep(list(RUNS), "smoke", jobs=2, threads=1, results_dir=tmp_path / "results", work_dir=tmp_path / "runs",
                progress=False)
    assert not rep.failed and sorted(rep.done) == sorted(f"mnist/{r.label}" for r in RUNS)
    assert_same(records(one_job / "results"), records(tmp_path / "results"))
    logs = list((tmp_path / "runs" / "logs" / "smoke").glob("*.log"))
    assert len(logs) == 3 and all(p.stat().st_size > 0 for p in logs)
    again = sweep(list(RUNS), "smoke", jobs=2, threads=1, results_dir=tmp_path / "results", work_dir=tmp_path / "runs",
                  progress=False)
    assert not again.done and len(again.skipped) == 3


def test_records_say_which_device_and_which_code_ran_each_epoch(one_job):
    for rec in one_job.rglob("record.json"):
        m = read_metrics(rec.parent)
        # the processor's model too: fp32 training is not bit-reproducible from one to another
        assert set(m["device"]) == {f"cpu ({cpu_model()})"} and set(m["commit"]) == {git_commit()}
        prov = json.loads(rec.read_text())["provenance"]
        assert prov["device"] == f"cpu ({cpu_model()})" and cpu_model() not in ("", "cpu")
        assert prov["epochs_by_device"] == {f"cpu ({cpu_model()})": len(m)} and prov["epochs_by_commit"] == {git_commit(): len(m)}


def test_records_keep_per_image_estimates_that_average_to_the_summary(one_job):
    for rec in one_job.rglob("record.json"):
        s = json.loads(rec.read_text())["summary"]
        with np.load(rec.parent / "arrays.npz") as a:
            b = E.get_budget("smoke")  # L_1 of the first 10,000 training images: all of the smoke budget's 1,000
            for name, n in (("train_L1", min(10_000, b.train_subset)), ("test_L1", b.test_subset), ("test_LK", b.test_subset)):
                per = a[f"{name}_per_image"]
                assert per.shape == (n,) and np.isfinite(per).all()
                assert per.mean(dtype=np.float64) == pytest.approx(s[name], abs=1e-3)
            assert (a["test_LK_per_image"] >= a["test_L1_per_image"] - 5).mean() > 0.9  # L_K >= L_1 mostly


def test_refresh_retrains_a_record_without_per_image_estimates_and_reproduces_it(one_job, tmp_path):
    import shutil

    shutil.copytree(one_job / "results", tmp_path / "results")
    old = next((tmp_path / "results").rglob("VAE-L1-*/record.json")).parent
    with np.load(old / "arrays.npz") as a:  # as a record made before per-image estimates were kept
        np.savez_compressed(old / "arrays.npz", **{k: a[k] for k in a.files if not k.endswith("_per_image")})
    from lvae_lib.results import seal

    seal(old)
    plain = sweep(list(RUNS), "smoke", threads=1, results_dir=tmp_path / "results", work_dir=tmp_path / "runs",
                  progress=False)
    assert not plain.done  # complete records are not retrained without --refresh
    rep = sweep(list(RUNS), "smoke", threads=1, results_dir=tmp_path / "results", work_dir=tmp_path / "runs",
                progress=False, refresh=True)
    assert rep.done == ["mnist/VAE-L1"] and len(rep.skipped) == 2
    rec = json.loads((old / "record.json").read_text())
    assert rec["provenance"]["replaces"]["summary_equal"] is True  # deterministic for its seed and threads
    with np.load(old / "arrays.npz") as a:
        assert "test_LK_per_image" in a.files


def fault(monkeypatch, **hook):
    """Inject a test fault into the workers of the sweeps that follow (sweep._fault)."""
    monkeypatch.setenv(FAULT_ENV, json.dumps(hook))


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install '.[ray]'") if not os.environ.get("CI") \
        else __import__("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"LVAE_DATA_DIR": os.environ["LVAE_DATA_DIR"]}})
    yield ray
    ray.shutdown()


@pytest.mark.ray
def test_ray_backend_matches_local_and_retries(ray_cluster, one_job, tmp_path, monkeypatch):
    fault(monkeypatch, label="VAE+BN-L2", times=1, dir=str(tmp_path / "faults"))
    rep = sweep(list(RUNS), "smoke", backend="ray", results_dir=tmp_path / "results", work_dir=tmp_path / "runs",
                progress=False)
    assert not rep.failed and len(rep.done) == 3
    assert len(list((tmp_path / "faults").iterdir())) == 2
    assert_same(records(one_job / "results"), records(tmp_path / "results"))


@pytest.mark.ray
def test_ray_reports_a_run_that_always_fails(ray_cluster, tmp_path, monkeypatch):
    fault(monkeypatch, label="VAE-L1", times=99, dir=str(tmp_path / "faults"))
    rep = sweep(RUNS[:2], "smoke", backend="ray", retries=1, results_dir=tmp_path / "results", work_dir=tmp_path / "runs",
                progress=False)
    assert list(rep.failed) == ["mnist/VAE-L1"] and rep.done == ["mnist/LVAE+BN+WU-L2"]
    assert len(list((tmp_path / "faults").iterdir())) == 2  # one try and one retry


def test_a_stacked_sweep_writes_ordinary_records(one_job, tmp_path):
    """`run --stack`: runs that differ in seed and warm-up train as stacks; every record is an ordinary one."""
    runs = [E.Run("mnist", v, 2, seed=s) for s in (0, 1) for v in ("VAE+BN", "VAE+BN+WU", "LVAE+BN+WU")]
    from lvae_lib.sweep import stack_groups

    b = E.get_budget("smoke")
    assert [[r.label for r in g] for g in stack_groups(runs, b)] == [
        ["VAE+BN-L2", "VAE+BN+WU-L2", "VAE+BN-L2", "VAE+BN+WU-L2"], ["LVAE+BN+WU-L2", "LVAE+BN+WU-L2"]]
    shutil.copytree(one_job / "results", tmp_path / "plain")  # the module's smoke store: two of the three plain runs
    plain = sweep(runs[:3], "smoke", threads=1, results_dir=tmp_path / "plain", work_dir=tmp_path / "w1", progress=False)
    assert plain.done == ["mnist/VAE+BN+WU-L2"]  # only what the store misses is trained
    rep = sweep(runs, "smoke", threads=1, results_dir=tmp_path / "stacked", work_dir=tmp_path / "w2", progress=False,
                stack=True)
    assert not rep.failed and len(rep.done) == 6 and not plain.failed
    for r in runs[:3]:
        one = json.loads(next((tmp_path / "plain").rglob(f"{r.label}-{r.key(b)}/record.json")).read_text())
        st_dir = next((tmp_path / "stacked").rglob(f"{r.label}-{r.key(b)}/record.json")).parent
        st = json.loads((st_dir / "record.json").read_text())
        assert st.keys() == one.keys() and st["summary"].keys() == one["summary"].keys()
        assert st["key"] == one["key"] and st["train_cfg"] == one["train_cfg"]
        m = read_metrics(st_dir)
        assert set(m["device"]) == {f"cpu ({cpu_model()}) (stack of {2 if 'LVAE' in r.label else 4})"}
        assert set(m["commit"]) == {git_commit()} and st["provenance"]["epochs_by_commit"] == {git_commit(): len(m)}
        with np.load(st_dir / "arrays.npz") as a, np.load(st_dir.parent.parent.parent.parent / "plain" / "smoke" /
                                                          "mnist" / st_dir.name / "arrays.npz") as o:
            assert set(a.files) == set(o.files)
        assert abs(st["summary"]["test_LK"] - one["summary"]["test_LK"]) < 5  # the same model, trained stacked
