"""Sweeps under faults: a worker that raises, is killed, or outlives its sweep; bad options refused.
(Split from test_sweep.py so that the two files run on two test workers.)"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lvae_lib import experiments as E
from lvae_lib.sweep import FAULT_ENV, sweep
from test_sweep import RUNS, fault

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("mnist_root")]


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
