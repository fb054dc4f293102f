"""Run the missing records of a figure's grid several at a time: local processes, or Ray tasks.

``python -m lvae_lib run fig3 --budget cpu --jobs 2`` trains the missing runs two at a time in
separate one-thread processes on this machine; ``--backend ray`` submits each as a Ray task instead.

* Complete records are skipped, so a second invocation picks up only what is still missing.
* Runs start in the order given (``run fig8 table1 fig3`` trains Fig. 8 first). A fine-tuning run
  (Table 1) starts from its base model's checkpoint: with the base's record already complete it takes
  its turn like any run, otherwise it waits until the base runs of this sweep are done.
* Every run logs to ``<work_dir>/logs/<budget>/<label>-<key>.log`` as it trains; one progress bar counts runs.
* A run that fails is retried ``retries`` times, then reported by name; the others go on.
* Records are written atomically by this (the driver) process, from what a worker returns: Ray
  workers need no shared filesystem. Ctrl-C cancels the pending runs and leaves no half-written
  record (checkpoints of interrupted local runs stay in ``<work_dir>`` and resume next time).
* Records do not depend on the backend or the number of jobs, only on the threads per run: the
  tests check that ``--jobs 1``, ``--jobs 2`` and Ray write identical records at one thread each.
  (At the ``smoke`` budget, one thread against two moved test L_K by up to 0.2 nats.)
* With Ray, checkpoints stay on the worker: an interrupted task starts again, and a fine-tuning task
  retrains its base model there.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from . import experiments as E
from . import runner
from .results import Store


@dataclass
class SweepReport:
    done: list[str] = field(default_factory=list)  # labels of the records written by this sweep
    skipped: list[str] = field(default_factory=list)  # already complete
    failed: dict[str, str] = field(default_factory=dict)  # label -> last error
    seconds: float = 0.0

    def __str__(self):
        s = f"{len(self.done)} run(s) done, {len(self.skipped)} already complete, {len(self.failed)} failed in {self.seconds:.0f} s"
        return s + "".join(f"\n  FAILED {k}: {v}" for k, v in self.failed.items())


def _name(run: E.Run) -> str:
    return f"{run.dataset}/{run.label}"


# a test's fault, as JSON in the environment of the sweep (its workers, local or Ray, read it there)
FAULT_ENV = "LVAE_TEST_FAULT"


def _fault(run: E.Run) -> None:
    """Test hook, set by ``$LVAE_TEST_FAULT`` (JSON): fail the first ``times`` attempts of the run labelled
    ``label`` (counted in files under ``dir``); with ``notify`` (a Unix socket's path), first tell the test
    this worker's pid there; with ``sleep``, then wait that many seconds, as a long run would; with ``kill``,
    SIGKILL the worker instead (``True``: always, a number: its first attempts)."""
    inject = json.loads(os.environ.get(FAULT_ENV) or "null")
    if not inject or inject["label"] != run.label:
        return
    d = Path(inject["dir"])
    d.mkdir(parents=True, exist_ok=True)
    n = len(list(d.glob(f"{run.label}.*")))
    (d / f"{run.label}.{n}").touch()
    if inject.get("notify"):
        import socket

        with socket.socket(socket.AF_UNIX) as s:
            s.connect(inject["notify"])
            s.sendall(str(os.getpid()).encode())
    time.sleep(inject.get("sleep", 0))
    kill = inject.get("kill")
    if kill is True or (kill and n < kill):  # as the kernel's out-of-memory killer would (``kill``: first n attempts)
        os.kill(os.getpid(), signal.SIGKILL)
    if n < inject["times"]:
        raise RuntimeError(f"injected fault (attempt {n + 1})")


def _execute(run: E.Run, budget: str, device: str, threads: int, results_dir: str, work_dir: str,
             data_root, log_path: str, compile: bool | None = False) -> dict:
    """Train one run in this process (a pool worker or a Ray task) and return its record's files.

    Output goes to ``log_path`` as it happens (``tail -f`` it). The record is written into
    ``results_dir`` (a private temporary folder) and read back as bytes, so that only the driver
    writes into the real store.
    """
    import torch

    torch.set_num_threads(threads)
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", buffering=1) as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        print(f"{_name(run)} [{budget}] on {device}, {threads} thread(s)")
        _fault(run)
        runner.run_one(run, budget, results_dir, work_dir, device, progress=True, data_root=data_root, compile=compile)
    return {"files": Store(results_dir, budget).files(run, run.key(E.get_budget(budget))), "log": Path(log_path).read_text()}


def sweep(target: str | list, budget: str = "cpu", jobs: int = 1, backend: str = "local", address: str | None = None,
          device: str = "cpu", threads: int | None = None, num_gpus: float = 0.0, retries: int = 1,
          results_dir=None, work_dir=None, data_root=None, seed: int = 0, progress: bool = True,
          refresh: bool = False, stack: bool = False,
          compile: bool | None = False) -> SweepReport:
    """Fill the store with every record of ``target``: a figure name, ``all``, a list of names, or a list of runs.

    ``threads``: torch threads per run (default: the machine's cores divided by ``jobs``; 1 on Ray,
    where it is also the task's ``num_cpus``). ``num_gpus``: the Ray resource request per task
    (fractions let several small models share a card). ``refresh``: also retrain complete records that
    have no per-image estimates (made before records kept them); the new record says in
    ``provenance.replaces`` whether its summary equals the old one's. ``stack``: every group of missing
    runs that differ only in seed and warm-up is trained as one stack (:func:`train_stack`), then its
    runs find their checkpoints complete and are only evaluated, group by group; the others run as usual.
    ``compile``: the training step through ``torch.compile`` (None: in runs long enough to repay it).
    """
    if backend not in ("local", "ray"):
        raise ValueError(f"backend must be 'local' or 'ray', got {backend!r}")
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    b = E.get_budget(budget)
    results_dir = str(results_dir or E.DEFAULT_RESULTS)
    work_dir = str(work_dir or E.DEFAULT_WORK)
    names = isinstance(target, str) or all(isinstance(t, str) for t in target)
    runs = [replace(r, seed=seed) for r in E.runs_for(target)] if names else list(target)
    store = Store(results_dir, b.name)
    store.check_writable()  # before hours of training, not after
    todo = store.missing(E.keyed(runs, b), refresh)
    if not refresh:  # records that are here but cannot be used: named, with the remedy, never counted as done
        for r, why in store.stale(E.keyed(runs, b)).items():
            print(f"{_name(r)}: its record cannot be used ({why.split('; not used')[0]}); `run ... --refresh` "
                  f"retrains it", file=sys.stderr)
    report = SweepReport(skipped=[_name(r) for r in runs if r not in todo])
    if threads is None:
        threads = 1 if backend == "ray" else max(1, (os.cpu_count() or 1) // jobs)
    log_dir = Path(work_dir) / "logs" / b.name
    log_dir.mkdir(parents=True, exist_ok=True)
    if backend == "local":  # a dataset that cannot be found or downloaded fails its runs at once, by name
        from .data import DataError, train_data

        for ds in sorted({r.dataset for r in todo}):
            try:
                train_data(ds, data_root)
            except DataError as e:
                why = str(e).splitlines()[0]
                for r in [r for r in todo if r.dataset == ds]:
                    report.failed[_name(r)] = f"data unavailable: {why}"
                todo = [r for r in todo if r.dataset != ds]
    waves = plan_waves(todo, store, b)
    t0 = time.perf_counter()
    if stack and backend != "local":
        raise ValueError("--stack trains on this machine: use it with the local backend")
    desc = (target if isinstance(target, str) else " ".join(target)) if names else "runs"
    bar = tqdm(total=len(todo), desc=f"{desc} [{b.name}]", unit="run",
               disable=not progress or not todo)
    run_wave = _run_ray if backend == "ray" else _run_local  # (the module `runner` makes one record)
    on_term = signal.getsignal(signal.SIGTERM)
    in_main = threading.current_thread() is threading.main_thread()  # only there can a handler be set
    if in_main:  # `kill <pid>` stops the workers too, as Ctrl-C does
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        for wave in waves:
            # with --stack, each group is trained as one stack, then its records are made, group by group,
            # so that a sweep stopped at a deadline has the records of the groups it finished
            groups = [g for g in stack_groups(wave, b) if len(g) > 1] if stack else []
            alone = [r for r in wave if not any(r in g for g in groups)]
            for i, part in enumerate(groups + [alone]):
                if i < len(groups):
                    try:
                        train_stack(part, b, device, threads, work_dir, data_root, progress, compile)
                    except Exception as e:  # noqa: BLE001 - its runs then train alone, and fail by name if they must
                        print(f"the stack of {', '.join(_name(r) for r in part)} failed ({type(e).__name__}: {e}); "
                              f"its runs train one by one")
                if part:
                    run_wave(part, b, store, report, bar, log_dir, jobs=jobs, device=device, threads=threads,
                             num_gpus=num_gpus, retries=retries, address=address, work_dir=work_dir,
                             data_root=data_root, compile=compile)
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, on_term)
        bar.close()
        report.seconds = time.perf_counter() - t0
    return report


def stack_groups(runs: list, budget: E.Budget) -> list[list]:
    """The base runs of ``runs`` grouped by :func:`lvae_lib.stacked.stack_key`, in order of first appearance."""
    from .stacked import stack_key

    groups: dict[tuple, list] = {}
    for r in runs:
        if not r.finetune:
            groups.setdefault((r.dataset, stack_key(*r.configs(budget))), []).append(r)
    return list(groups.values())


def train_stack(group: list, budget: E.Budget, device: str, threads: int, work_dir, data_root, progress=True,
                compile: bool | None = False) -> None:
    """Advance the checkpoints of the runs of ``group`` (one of :func:`stack_groups`) to their last epoch
    as one stack, in this process. Runs whose checkpoints stand at another epoch than the first's, and
    a group of one, are left to train alone."""
    import torch

    from .data import train_data
    from .stacked import train_stacked
    from .train import checkpoint_path, load_checkpoint

    epoch = lambda r: (load_checkpoint(p)["epoch"] if (p := checkpoint_path(E.run_dir(work_dir, budget, r))).exists() else 0)  # noqa: E731
    at = {r: epoch(r) for r in group}
    first = group[0]
    group = [r for r in group if at[r] == at[first]]
    if len(group) < 2 or at[first] >= budget.epochs(first.dataset):
        return
    torch.set_num_threads(threads)
    mcfg, _ = first.configs(budget)
    train_stacked(mcfg, [r.configs(budget)[1] for r in group], train_data(first.dataset, data_root),
                  [E.run_dir(work_dir, budget, r) for r in group], device=device, progress=progress, compile=compile)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def plan_waves(todo: list, store: Store, budget: E.Budget) -> list[list]:
    """Two waves, each in the given order: the runs that can start now (base runs, and fine-tuning runs
    whose base record is complete), then the fine-tuning runs whose base this sweep trains first."""
    ready = lambda r: not r.finetune or store.complete(r.base(), r.base().key(budget))  # noqa: E731
    return [[r for r in todo if ready(r)], [r for r in todo if not ready(r)]]


def _log_path(log_dir: Path, run: E.Run, key: str) -> Path:
    return log_dir / f"{run.label}-{key}.log"


def _finish(run, key, result, store, report, bar, log_dir):
    store.write_files(run, key, result["files"])  # a refresh: the store says what it replaced (provenance.replaces)
    _log_path(log_dir, run, key).write_text(result["log"])  # (a Ray worker's log arrives only now)
    report.done.append(_name(run))
    bar.update(1)


def _fail(run, key, err, report, bar, log_dir):
    """Report ``run`` failed with ``err`` (an exception, or its text from a worker)."""
    text = (err if isinstance(err, str) else f"{type(err).__name__}: {err}").strip()
    kind, last = text.split(":", 1)[0], text.splitlines()[-1]
    report.failed[_name(run)] = last if last.startswith(kind) else f"{kind}: {last}"  # the type and the last line
    with open(_log_path(log_dir, run, key), "a") as f:
        f.write(f"\nFAILED: {err}\n")
    bar.update(1)


def _watch_parent(pid: int) -> None:
    """In a worker: end this process when the sweep that started it is gone (even SIGKILLed), rather than
    train on for hours as an orphan. Its checkpoints are atomic, so stopping anywhere loses at most the
    epochs since the last one."""
    while os.getppid() == pid:
        time.sleep(1.0)
    os._exit(1)


def _child(conn, parent: int, args: tuple) -> None:
    """A local worker: one run, its record's files (or its error, as text) sent back through ``conn``."""
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    try:
        conn.send(("ok", _execute(*args)))
    except BaseException as e:  # noqa: BLE001 - reported by the driver, by name
        conn.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        conn.close()


def _died(proc) -> str:
    code = proc.exitcode
    return f"worker died ({signal.Signals(-code).name})" if code is not None and code < 0 else f"worker exited ({code})"


def _scratch(work_dir) -> str:
    """A private folder for this sweep's worker output, ``<work_dir>/.sweep-<pid>-*``; those of sweeps
    that died without cleaning up (SIGKILL) are removed first."""
    root = Path(work_dir)
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob(".sweep-*"):
        pid = old.name.split("-")[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists() and int(pid) != os.getpid():
            shutil.rmtree(old, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f".sweep-{os.getpid()}-", dir=root)


def _run_local(wave, b, store, report, bar, log_dir, *, jobs, device, threads, retries, work_dir, data_root,
               compile, **_):
    """Each run in a process of its own, ``jobs`` at a time: a worker that dies (an out-of-memory kill)
    fails its run only; the run is retried, then reported by name, and the others go on."""
    from multiprocessing.connection import wait as wait_any

    ctx = get_context("spawn")
    scratch = _scratch(work_dir)
    attempts = {r: 0 for r in wave}
    todo, running = list(wave), {}

    def start(r):
        attempts[r] += 1
        mine, theirs = ctx.Pipe(duplex=False)
        args = (r, b.name, device, threads, scratch, work_dir, data_root, str(_log_path(log_dir, r, r.key(b))), compile)
        proc = ctx.Process(target=_child, args=(theirs, os.getpid(), args), name=f"lvae {r.label}")
        proc.start()
        theirs.close()  # so that a dead worker's end reads as EOF here
        running[mine] = (r, proc)

    try:
        while todo or running:
            while todo and len(running) < jobs:
                start(todo.pop(0))
            for conn in wait_any(list(running)):
                r, proc = running.pop(conn)
                try:
                    status, payload = conn.recv()
                except EOFError:
                    status, payload = "error", None
                conn.close()
                proc.join()
                key = r.key(b)
                if status == "ok":
                    try:
                        _finish(r, key, payload, store, report, bar, log_dir)
                        continue
                    except Exception as e:  # noqa: BLE001 - e.g. the store could not be written
                        payload = f"{type(e).__name__}: {e}"
                if attempts[r] <= retries:
                    todo.insert(0, r)
                else:
                    _fail(r, key, payload or _died(proc), report, bar, log_dir)
    except KeyboardInterrupt:
        for _, proc in running.values():
            proc.terminate()
        for _, proc in running.values():
            proc.join(10)
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run_ray(wave, b, store, report, bar, log_dir, *, device, threads, num_gpus, retries, address, data_root,
             compile, **_):
    try:
        import ray
    except ImportError:
        raise SystemExit('--backend ray needs Ray: pip install ".[ray]" (or: pip install ray)') from None
    started = not ray.is_initialized()
    # workers find the data where the driver does (or download it themselves), and a test's fault
    env = {k: os.environ[k] for k in ("LVAE_DATA_DIR", "LVAE_CACHE_DIR", FAULT_ENV) if k in os.environ}
    if started:
        try:
            ray.init(address=address, log_to_driver=False, runtime_env={"env_vars": env} if env else None)
        except ConnectionError as e:
            raise ConnectionError(f"no Ray cluster at --address {address} ({str(e).splitlines()[0][:120]}): start one "
                                  f"with `ray start --head`, or leave --address out for a local one") from None
        if threading.current_thread() is threading.main_thread():  # ray.init put its own SIGTERM handler in place:
            signal.signal(signal.SIGTERM, _interrupt)  # `kill <pid>` must stop the sweep as Ctrl-C does
    task = ray.remote(_ray_task).options(num_cpus=threads, num_gpus=num_gpus, max_retries=retries, retry_exceptions=True,
                                         **({"runtime_env": {"env_vars": env}} if env else {}))
    refs = {task.remote(r, b.name, device, threads, data_root, f"{r.label}-{r.key(b)}.log", compile): r
            for r in wave}
    try:
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            r = refs[ready[0]]
            key = r.key(b)
            try:
                _finish(r, key, ray.get(ready[0]), store, report, bar, log_dir)
            except Exception as e:  # noqa: BLE001 - retries exhausted: report by name, go on
                _fail(r, key, e, report, bar, log_dir)
    except KeyboardInterrupt:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise


def _ray_task(run, budget, device, threads, data_root, log_name, compile=False):
    """On a Ray worker: train in private temporary folders (no shared filesystem needed)."""
    with tempfile.TemporaryDirectory(prefix="lvae-ray-") as tmp:
        return _execute(run, budget, device, threads, f"{tmp}/results", f"{tmp}/runs", data_root, f"{tmp}/{log_name}",
                        compile)
