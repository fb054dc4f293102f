"""Sweeps: --jobs N local processes and the Ray backend write the same records as one job; faults are
retried, then reported by name; a second invocation only runs what is missing."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lvae_lib import experiments as E
from lvae_lib.results import read_metrics
from lvae_lib.sweep import FAULT_ENV, sweep
from lvae_lib.train import git_commit

ROOT = Path(__file__).resolve().parents[1]
RUNS = [E.Run("mnist", "VAE", 1), E.Run("mnist", "LVAE+BN+WU", 2), E.Run("mnist", "VAE+BN", 2)]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def data_dir():
    if not os.environ.get("LVAE_DATA_DIR") and not (ROOT.parent / "shared" / "data").exists():
        pytest.skip("needs MNIST: set LVAE_DATA_DIR")
    os.environ.setdefault("LVAE_DATA_DIR", str((ROOT.parent / "shared" / "data").resolve()))


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
        assert set(m["device"]) == {"cpu"} and set(m["commit"]) == {git_commit()}
        prov = json.loads(rec.read_text())["provenance"]
        assert prov["epochs_by_device"] == {"cpu": len(m)} and prov["epochs_by_commit"] == {git_commit(): len(m)}


def test_records_keep_per_image_estimates_that_average_to_the_summary(one_job):
    for rec in one_job.rglob("record.json"):
        s = json.loads(rec.read_text())["summary"]
        with np.load(rec.parent / "arrays.npz") as a:
            for name in ("test_L1", "test_LK"):
                per = a[f"{name}_per_image"]
                assert per.shape == (E.get_budget("smoke").test_subset,) and np.isfinite(per).all()
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


def test_local_fault_is_retried_and_a_hopeless_run_reported_by_name(tmp_path, monkeypatch):
    fault(monkeypatch, label="VAE-L1", times=1, dir=str(tmp_path / "faults1"))
    rep = sweep(RUNS[:2], "smoke", jobs=2, threads=1, retries=1, results_dir=tmp_path / "r1", work_dir=tmp_path / "w1",
                progress=False)
    assert not rep.failed and len(rep.done) == 2
    assert len(list((tmp_path / "faults1").iterdir())) == 2  # failed once, then succeeded
    fault(monkeypatch, label="VAE-L1", times=99, dir=str(tmp_path / "faults2"))
    rep = sweep(RUNS[:2], "smoke", jobs=2, threads=1, retries=1, results_dir=tmp_path / "r2", work_dir=tmp_path / "w2",
                progress=False)
    assert list(rep.failed) == ["mnist/VAE-L1"] and "injected fault" in rep.failed["mnist/VAE-L1"]
    assert rep.done == ["mnist/LVAE+BN+WU-L2"]
    assert len(list((tmp_path / "r2").rglob("record.json"))) == 1  # nothing half-written for the failed run


def sweep_with_a_sleeping_worker(tmp_path):
    """A sweep in a subprocess whose one worker sleeps (as a long run trains); returns it and the worker's pid,
    which the worker sends through a Unix socket when it starts (no polling)."""
    import socket

    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "notify"))
    sock.listen(1)
    sock.settimeout(120)
    hook = {"label": "VAE-L1", "times": 0, "dir": str(tmp_path / "started"), "sleep": 300,
            "notify": str(tmp_path / "notify")}
    code = (f"from lvae_lib.sweep import sweep; from lvae_lib.experiments import Run; "
            f"sweep([Run('mnist', 'VAE', 1)], 'smoke', threads=1, results_dir={str(tmp_path / 'r')!r}, "
            f"work_dir={str(tmp_path / 'w')!r}, progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, FAULT_ENV: json.dumps(hook)})
    with sock, sock.accept()[0] as conn:  # until the worker runs (and sleeps in the hook)
        worker = conn.recv(32).decode()
    assert proc.poll() is None, "the sweep ended before its worker started"
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    assert worker in children
    return proc, children


def still_running(pids, wait=15.0):
    """The processes of ``pids`` still running after up to ``wait`` seconds: each one's exit is awaited on a
    pidfd (readable once the process has ended, zombie or reaped), not polled."""
    import select

    fds = {}
    for p in pids:
        try:
            fds[os.pidfd_open(int(p))] = p
        except ProcessLookupError:  # already gone
            pass
    deadline = time.time() + wait
    try:
        while fds and (left := deadline - time.time()) > 0:
            for fd in select.select(list(fds), [], [], left)[0]:
                del fds[fd]
                os.close(fd)
        return list(fds.values())
    finally:
        for fd in fds:
            os.close(fd)


def test_sigterm_stops_the_workers_with_the_sweep(tmp_path):
    """`kill <sweep pid>` must not leave a worker training on and writing checkpoints behind it."""
    proc, children = sweep_with_a_sleeping_worker(tmp_path)
    proc.terminate()
    assert proc.wait(timeout=60) != 0
    alive = still_running(children, wait=2.0)
    assert not alive, f"workers still running after the sweep was killed: {alive}"


def test_unknown_backend_and_bad_jobs_are_refused():
    with pytest.raises(ValueError, match="backend"):
        sweep(list(RUNS), "smoke", backend="slurm")
    with pytest.raises(ValueError, match="jobs"):
        sweep(list(RUNS), "smoke", jobs=0)


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


def test_ray_backend_without_ray_says_how_to_install(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(SystemExit, match=r'pip install "\.\[ray\]"'):
        sweep(RUNS[:1], "smoke", backend="ray", results_dir=tmp_path / "r", work_dir=tmp_path / "w", progress=False)
    assert not list(tmp_path.rglob("record.json"))


def test_a_killed_worker_fails_only_its_run_which_is_retried(tmp_path, monkeypatch):
    """An out-of-memory kill of one worker: that run fails by name (or succeeds on its retry), the others
    go on; before, the whole sweep aborted with BrokenProcessPool."""
    fault(monkeypatch, label="VAE-L1", times=0, dir=str(tmp_path / "started"), kill=True)
    rep = sweep(RUNS[:2], "smoke", jobs=2, threads=1, retries=0, results_dir=tmp_path / "r", work_dir=tmp_path / "w",
                progress=False)
    assert list(rep.failed) == ["mnist/VAE-L1"] and "SIGKILL" in rep.failed["mnist/VAE-L1"]
    assert rep.done == ["mnist/LVAE+BN+WU-L2"]
    fault(monkeypatch, label="VAE-L1", times=0, dir=str(tmp_path / "again"), kill=1)
    rep = sweep(RUNS[:2], "smoke", jobs=2, threads=1, retries=1, results_dir=tmp_path / "r2", work_dir=tmp_path / "w2",
                progress=False)
    assert not rep.failed and sorted(rep.done) == ["mnist/LVAE+BN+WU-L2", "mnist/VAE-L1"]  # killed once, retried


def test_workers_stop_when_their_sweep_is_killed_with_sigkill(tmp_path):
    proc, children = sweep_with_a_sleeping_worker(tmp_path)
    proc.kill()  # SIGKILL: the sweep can clean nothing up itself
    proc.wait()
    alive = still_running(children)
    assert not alive, f"orphaned workers still running: {alive}"
    assert list((tmp_path / "w").glob(".sweep-*"))  # its scratch folder is left behind...
    sweep([E.Run("mnist", "VAE", 1)], "smoke", threads=1, results_dir=tmp_path / "r", work_dir=tmp_path / "w",
          progress=False)
    assert not list((tmp_path / "w").glob(".sweep-*"))  # ...and the next sweep removes it


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
        assert set(m["device"]) == {f"cpu (stack of {2 if 'LVAE' in r.label else 4})"}
        assert set(m["commit"]) == {git_commit()} and st["provenance"]["epochs_by_commit"] == {git_commit(): len(m)}
        with np.load(st_dir / "arrays.npz") as a, np.load(st_dir.parent.parent.parent.parent / "plain" / "smoke" /
                                                          "mnist" / st_dir.name / "arrays.npz") as o:
            assert set(a.files) == set(o.files)
        assert abs(st["summary"]["test_LK"] - one["summary"]["test_LK"]) < 5  # the same model, trained stacked
