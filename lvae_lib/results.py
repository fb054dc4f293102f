"""The results store: one folder per run under ``results/<budget>/<dataset>/<label>-<key>/``.

Each record holds ``record.json`` (configs, summary, provenance: a :class:`Record`, read by :func:`read`),
``metrics.csv`` (per epoch) and ``arrays.npz`` (per-unit KL, PCA projections, image grids: :data:`ARRAYS`);
records of budgets that keep weights (the paper's) also hold ``model.safetensors`` (:data:`WEIGHTS`, fp32, read
back with :meth:`Record.load_model`).
A record is written into a temporary folder and renamed into place, with ``record.json`` the marker of completeness,
so a half-written record is never read as complete. ``record.json`` carries the checksums of its own
content and of the other files (:func:`seal`); a record that changed after it was written, or that lies
in another run's folder, is named and never used (:func:`check`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .files import atomic


class BadRecord(ValueError):
    """A record whose files changed after it was written, or that lies in another run's folder."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _content_sha(record: dict) -> str:
    return hashlib.sha256(json.dumps({k: v for k, v in record.items() if k != "checksums"}, sort_keys=True).encode()).hexdigest()


def seal(folder: Path) -> None:
    """Add to ``folder/record.json`` the checksums of its own content and of the record's other files."""
    folder = Path(folder)
    rec = Record.from_json(json.loads((folder / "record.json").read_text()))
    sums = {"record": _content_sha(rec.to_json()),
            **{f.name: _sha256(f) for f in sorted(folder.iterdir()) if f.name != "record.json"}}
    _write_json(folder, dataclasses.replace(rec, checksums=sums))


def _write_json(folder: Path, record: "Record") -> None:
    (Path(folder) / "record.json").write_text(json.dumps(record.to_json(), indent=1))


def _exchange(a: Path, b: Path) -> bool:
    """Swap the folders ``a`` and ``b`` in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where
    the system cannot."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), exchange) == 0


def _swap_in(tmp: Path, final: Path) -> None:
    """Put the complete folder ``tmp`` at ``final`` so that ``final`` is never absent or half-written: a
    rename where there is none yet, else an exchange (``tmp`` then holds the old one, for the caller to
    remove). Where the system has no exchange, the old folder is renamed aside first (absent for a moment)."""
    try:
        os.rename(tmp, final)  # fails if final exists (a folder that is not empty)
        return
    except OSError:
        if not final.exists():
            raise
    if _exchange(tmp, final):
        return
    aside = final.with_name(f".{final.name}.old-{os.getpid()}")
    os.replace(final, aside)
    os.replace(tmp, final)
    shutil.rmtree(aside, ignore_errors=True)


def read(folder: Path, key: str | None = None, label: str | None = None, _tries: int = 3) -> "Record":
    """The record in ``folder``, checked (:func:`check`, with ``key``/``label`` the run's it should be):
    a changed, misplaced or unreadable record raises :class:`BadRecord` naming it. A record replaced while
    it was being read (its files then disagree with its checksums for a moment) is read again."""
    import time

    for attempt in range(_tries):
        try:
            return _read(folder, key, label)
        except BadRecord as e:
            if "checksum mismatch" not in str(e) and "cannot be read" not in str(e) or attempt == _tries - 1:
                raise
            time.sleep(0.05)


def _read(folder: Path, key: str | None = None, label: str | None = None) -> "Record":
    folder = Path(folder)
    try:
        rec = json.loads((folder / "record.json").read_text())
    except (OSError, ValueError) as e:
        raise BadRecord(f"{folder / 'record.json'} cannot be read ({type(e).__name__}: {e}); not used") from None
    check(folder, rec, key, label)
    try:
        return Record.from_json(rec, folder)
    except (TypeError, ValueError) as e:
        raise BadRecord(f"{folder / 'record.json'} is not a record of this format ({e}); not used") from None


def read_metrics(folder: Path) -> pd.DataFrame:
    """The per-epoch rows in ``folder``'s ``metrics.csv``; device and commit as strings (a commit such as
    15e4311 would otherwise read as a float)."""
    return pd.read_csv(Path(folder) / "metrics.csv", dtype={"device": str, "commit": str})


def check(folder: Path, rec: dict, key: str | None = None, label: str | None = None) -> None:
    """Raise :class:`BadRecord` naming ``folder`` if its files differ from their checksums, or if the
    record belongs to another run than the folder's ``label``/``key``."""
    folder = Path(folder)
    if key is not None and (rec.get("key") != key or rec.get("run", {}).get("label") != label):
        raise BadRecord(f"{folder}: its record.json is that of {rec.get('run', {}).get('label')}-{rec.get('key')}, "
                        f"not of {label}-{key} (copied into the wrong folder?); not used")
    sums = rec.get("checksums")
    if sums is None:
        raise BadRecord(f"{folder}: record.json has no checksums (written by hand, or before records were "
                        f"sealed); not used. `run ... --refresh` retrains it")
    gone = [n for n in sums if n != "record" and not (folder / n).exists()]
    if gone:
        raise BadRecord(f"{folder}: {', '.join(gone)} {'is' if len(gone) == 1 else 'are'} missing; not used. "
                        f"Restore it from git, or retrain the record with `run ... --refresh`")
    changed = [n for n, sha in sums.items() if (_content_sha(rec) if n == "record" else _sha256(folder / n)) != sha]
    if changed:
        raise BadRecord(f"{folder}: {', '.join('record.json' if n == 'record' else n for n in changed)} changed after "
                        f"the record was written (checksum mismatch); not used. `run ... --refresh` cannot fix "
                        f"it: restore it from git, or delete the folder and train it again")


# ----------------------------------------------------------------------------- the record's schema
@dataclass(frozen=True)
class RunInfo:
    """Which model a record is of (the fields of :class:`lvae_lib.experiments.Run`, and its names)."""

    dataset: str
    dataset_name: str
    variant: str
    layers: int
    finetune: str
    seed: int
    label: str


@dataclass(frozen=True)
class Summary:
    """The record's numbers: bounds in nats per image (``test_LK`` with ``K`` importance samples),
    active units and the KL of each layer (nats, test-set mean)."""

    train_L1: float
    test_L1: float
    test_LK: float
    K: int
    active_units: list
    layer_kl: list


@dataclass(frozen=True)
class Provenance:
    """Where, when and by which code a record was made. ``git_commit`` is the code of the process that
    finished the record; a run resumed across commits or machines says which epochs ran under which in
    ``epochs_by_commit`` and ``epochs_by_device``. Those two and ``replaces`` are absent (``None``) in
    records made before they were kept; ``replaces`` names the record a refresh replaced."""

    wall_seconds: float
    train_seconds: float
    device: str
    torch: str
    git_commit: str
    threads: int | None
    date: str
    epochs_by_device: dict | None = None
    epochs_by_commit: dict | None = None
    replaces: dict | None = None


@dataclass(frozen=True)
class Record:
    """One run's ``record.json``, typed. :meth:`from_json` is its one reader and :meth:`to_json` its one
    writer; ``to_json(from_json(d)) == d`` for every committed record (a test reads them all).
    The arrays beside it (``arrays.npz``) are named by :data:`ARRAYS`."""

    run: RunInfo
    budget: str
    key: str
    model_cfg: dict
    train_cfg: dict
    finetune_cfg: dict | None
    summary: Summary
    provenance: Provenance
    checksums: dict | None = None  # added by :func:`seal`
    path: str | None = field(default=None, compare=False)  # the folder it was read from (not stored)

    @property
    def has_weights(self) -> bool:
        """Whether the record keeps its trained model's weights (:data:`WEIGHTS`)."""
        return self.path is not None and (Path(self.path) / WEIGHTS).exists()

    def load_model(self, device="cpu"):
        """The record's trained model (a :class:`lvae_lib.model.LadderVAE`) in evaluation mode on ``device``,
        from its :data:`WEIGHTS` (checked by the record's checksums when it was read)."""
        if not self.has_weights:
            raise FileNotFoundError(f"{self.path or self.run.label}: this record keeps no {WEIGHTS} (only records "
                                    f"of budgets with keep_weights, the paper's, do); train it again to get one")
        return load_model(self.model_cfg, Path(self.path) / WEIGHTS, device)

    @property
    def epochs(self) -> int:
        """Training epochs in all: the base run's, and the fine-tuning's where there is one."""
        return self.train_cfg["epochs"] + ((self.finetune_cfg or {}).get("epochs") or 0)

    @classmethod
    def from_json(cls, d: dict, path=None) -> "Record":
        known = {f.name for f in dataclasses.fields(cls)} - {"path"}
        if set(d) - known or {"run", "summary", "provenance", "key", "budget"} - set(d):
            raise ValueError(f"not a record: fields {sorted(set(d) ^ known)} differ from {sorted(known)}")
        return cls(**{**d, "run": RunInfo(**d["run"]), "summary": Summary(**d["summary"]),
                      "provenance": Provenance(**d["provenance"])}, path=None if path is None else str(path))

    def to_json(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "path"}
        d["run"], d["summary"] = dataclasses.asdict(self.run), dataclasses.asdict(self.summary)
        later = {f.name for f in dataclasses.fields(Provenance) if f.default is None}  # absent from older records
        d["provenance"] = {k: v for k, v in dataclasses.asdict(self.provenance).items()
                           if v is not None or k not in later}
        return d if self.checksums is not None else {k: v for k, v in d.items() if k != "checksums"}


# the names in ``arrays.npz``, by what they hold (``{l}``: the layer, 1 at the bottom; ``{e}``: the epoch)
ARRAYS = {
    "train_L1_per_image": "L_1 of each of the first 10,000 training images (one fixed binarisation), in data-set order",
    "test_L1_per_image": "L_1 of each test image, in test-set order",
    "test_LK_per_image": "L_K of each test image, in test-set order",
    "test_L{k}_per_image": "records with K > experiments.NESTED_K: L_k of the first k of the same samples (k = NESTED_K)",
    "layer_kl_per_image": "[images, layers] KL of each layer per test image",
    "unit_kl_l{l}": "per-unit KL of layer l (test-set mean)",
    "pca_l{l}": "2-D PCA of samples of z_l (the first analysis_images test images)",
    "pca_labels": "their class labels",
    "kl_snapshot_e{e}_l{l}": "per-unit KL of layer l after epoch e (Fig. 4)",
    "samples": "prior samples (5-layer models), uint8", "data": "test images", "reconstructions": "of them",
}


# the trained model's parameters and batch-norm statistics, fp32, in records whose budget keeps them
WEIGHTS = "model.safetensors"
CHECKS = "weight_checks.csv"  # per budget: checks of the kept models (lvae_lib.runner.weight_checks)


def weights_bytes(model) -> bytes:
    """A model's state as the bytes of :data:`WEIGHTS` (fp32 and on the CPU, whatever it was trained on)."""
    from safetensors.torch import save

    return save({k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).contiguous()
                 for k, v in model.state_dict().items()})


def load_model(model_cfg: dict, weights, device="cpu"):
    """A :class:`lvae_lib.model.LadderVAE` of ``model_cfg`` with the weights in the file ``weights`` (the
    :data:`WEIGHTS` format, :func:`weights_bytes`), in evaluation mode on ``device``: the one loader of a
    record's model and of a `train` run's. A missing, torn or foreign file raises naming it."""
    from safetensors.torch import load_file

    from .config import ModelConfig
    from .model import LadderVAE

    weights = Path(weights)
    if not weights.exists():
        raise FileNotFoundError(f"{weights} is missing: train the model again")
    model = LadderVAE(ModelConfig(**model_cfg))
    try:
        model.load_state_dict(load_file(weights))
    except Exception as e:  # noqa: BLE001 - a torn or foreign file: name it
        raise BadRecord(f"{weights} does not hold this model ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:200]}); train it again") from None
    return model.to(device).eval()


def kl_snapshot_name(epoch: int, layer: int) -> str:
    return f"kl_snapshot_e{epoch}_l{layer}"


def kl_snapshots(arrays: dict) -> dict[int, list]:
    """{epoch: [per-unit KL of each layer, bottom first]} from a record's arrays."""
    snaps: dict[int, dict] = {}
    for k, v in arrays.items():
        if k.startswith("kl_snapshot_e"):
            e, layer = k[len("kl_snapshot_e"):].split("_l")
            snaps.setdefault(int(e), {})[int(layer)] = v
    return {e: [s[i] for i in sorted(s)] for e, s in sorted(snaps.items())}


TABLE_COLUMNS = ["dataset", "dataset_name", "variant", "layers", "finetune", "seed", "label", "budget", "key",
                 "train_L1", "test_L1", "test_LK", "K", "active_units", "layer_kl", "train_seconds", "device",
                 "threads", "epochs", "path"]


@contextlib.contextmanager
def _naming(folder: Path):
    """An ``OSError`` inside (a full disk) names the record being written; nothing of it is kept."""
    try:
        yield
    except OSError as e:
        raise OSError(e.errno, f"cannot write the record {folder}: {e.strerror or e}") from None


class Store:
    def __init__(self, root, budget: str):
        self.root = Path(root) / budget
        self.budget = budget

    def check_writable(self) -> None:
        """Raise ``PermissionError`` naming the folder if records cannot be written here."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=self.root).close()
        except OSError as e:
            raise PermissionError(f"cannot write records into {self.root}: {e.strerror or e}") from None

    def path(self, run, key: str) -> Path:
        return self.root / run.dataset / f"{run.label}-{key}"

    def complete(self, run, key: str) -> bool:
        return (self.path(run, key) / "record.json").exists()

    def has_per_image(self, run, key: str) -> bool:
        """Whether the record stores per-test-image estimates (records made before they were kept do not,
        nor does one whose arrays.npz is missing or unreadable)."""
        try:
            with np.load(self.path(run, key) / "arrays.npz") as f:
                return "test_LK_per_image" in f.files
        except (OSError, ValueError):
            return False

    def stale(self, keyed) -> dict:
        """``{run: why}`` for the ``(run, key)`` pairs whose record is here but cannot be used (no checksums, a
        file missing or changed, another run's): :func:`read`'s reason, which names the remedy."""
        out = {}
        for r, k in keyed:
            if self.complete(r, k):
                try:
                    self.load(r, k)
                except BadRecord as e:
                    out[r] = str(e)
        return out

    def missing(self, keyed, refresh: bool = False) -> list:
        """The runs of the ``(run, key)`` pairs that have no complete record here, in their order; with
        ``refresh``, also those whose record has no per-image estimates or cannot be used (:meth:`stale`),
        and with a fine-tuned run that is refreshed, every other fine-tuned run of its base among the pairs:
        Table 1 compares them with each other, so they must start from one base model, and a base retrained
        on another processor is another model (fp32 training is bit for bit only on one processor model)."""
        keyed = list(keyed)
        bad = self.stale(keyed) if refresh else {}
        done = {r: self.complete(r, k) for r, k in keyed}
        todo = {r for r, k in keyed if not done[r] or (refresh and (r in bad or not self.has_per_image(r, k)))}
        bases = {r.base() for r in todo if r.finetune and done[r]} if refresh else set()
        return [r for r, _ in keyed if r in todo or (r.finetune and r.base() in bases)]

    @contextlib.contextmanager
    def _atomic(self, run, key: str):
        """Yield an empty temporary folder beside the record's place; on success it replaces the record."""
        final = self.path(run, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private (drwx------); a record is as any new folder
        try:
            yield tmp
            seal(tmp)
            _swap_in(tmp, final)  # tmp now holds the old record, if there was one
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)

    def write(self, run, key: str, record: Record, history: list[dict], arrays: dict, model=None) -> Path:
        """Write a record; with ``model``, its weights too (:data:`WEIGHTS`)."""
        if not isinstance(record, Record):
            raise TypeError(f"Store.write takes a results.Record, got {type(record).__name__}")
        with self._atomic(run, key) as tmp, _naming(self.path(run, key)):
            pd.DataFrame(history).to_csv(tmp / "metrics.csv", index=False, float_format="%.5g")
            np.savez_compressed(tmp / "arrays.npz", **arrays)
            if model is not None:
                (tmp / WEIGHTS).write_bytes(weights_bytes(model))
            _write_json(tmp, record)
        return self.path(run, key)

    def write_files(self, run, key: str, files: dict[str, bytes]) -> Path:
        """Write a record received as bytes (e.g. from a Ray worker), ``record.json`` last. Where it replaces a
        complete record (a refresh), its provenance says which (commit, date) and whether it reproduced that
        record's summary (``replaces``; a damaged record is replaced, not compared). The weight checks of the
        weights it replaces are dropped, so that ``check-weights`` checks the new ones."""
        stale = False
        if self.complete(run, key):
            weights = self.path(run, key) / WEIGHTS
            stale = weights.exists() and weights.read_bytes() != files.get(WEIGHTS)
            try:
                old = self.load(run, key)
                replaces = {"git_commit": old.provenance.git_commit, "date": old.provenance.date}
            except BadRecord:
                old, replaces = None, {"git_commit": None, "date": None}
            new = Record.from_json(json.loads(files["record.json"]))
            replaces["summary_equal"] = old is not None and old.summary == new.summary
            new = dataclasses.replace(new, provenance=dataclasses.replace(new.provenance, replaces=replaces))
            files = {**files, "record.json": json.dumps(new.to_json(), indent=1).encode()}
        with self._atomic(run, key) as tmp:
            for name, data in sorted(files.items(), key=lambda kv: kv[0] == "record.json"):
                (tmp / name).write_bytes(data)
        if stale and len(checks := self.checks()):
            self._write_checks(checks[checks["key"] != key])
        return self.path(run, key)

    def files(self, run, key: str) -> dict[str, bytes]:
        """The files of ``run``'s record as bytes, by name: what :meth:`write_files` takes (to move a record
        from one store into another, e.g. out of a Ray worker's private one)."""
        return {f.name: f.read_bytes() for f in self.path(run, key).iterdir() if f.is_file()}

    def load(self, run, key: str) -> Record:
        """The record of ``run`` (:func:`read`)."""
        return read(self.path(run, key), key, run.label)

    def metrics(self, run, key: str) -> pd.DataFrame:
        """The per-epoch rows of ``run`` (:func:`read_metrics`)."""
        return read_metrics(self.path(run, key))

    def arrays(self, run, key: str) -> dict:
        with np.load(self.path(run, key) / "arrays.npz") as f:
            return dict(f)

    @property
    def checks_path(self) -> Path:
        """The budget's weight checks (:func:`lvae_lib.runner.weight_checks`), one row per record and check."""
        return self.root / CHECKS

    def checks(self) -> pd.DataFrame:
        """The weight checks made so far (no rows if none)."""
        if not self.checks_path.exists():
            return pd.DataFrame(columns=["label", "key", "check"])
        return pd.read_csv(self.checks_path, dtype={"commit": str, "key": str})

    def add_checks(self, rows) -> Path:
        """Add (or replace: the same key and check) rows of weight checks, written atomically."""
        new = pd.DataFrame(list(rows))
        old = self.checks()
        if len(old):
            old = old[~old.set_index(["key", "check"]).index.isin(new.set_index(["key", "check"]).index)]
        return self._write_checks(pd.concat([old, new], ignore_index=True) if len(old) else new)

    def _write_checks(self, checks: pd.DataFrame) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        with atomic(self.checks_path) as tmp:
            checks.sort_values(["label", "seed", "check"]).to_csv(tmp, index=False, float_format="%.6g")
        return self.checks_path

    def records(self, keyed) -> tuple[list[Record], dict]:
        """The usable records of the ``(run, key)`` pairs that are complete here, in their order, each read once
        (:meth:`load`), and ``{run: why}`` of those that cannot be used (each also warned, never shown as numbers)."""
        recs, bad = [], {}
        for r, key in keyed:
            if not self.complete(r, key):
                continue
            try:
                recs.append(self.load(r, key))
            except BadRecord as e:
                warnings.warn(str(e), stacklevel=2)
                bad[r] = str(e)
        return recs, bad

    def table(self, keyed) -> pd.DataFrame:
        """:func:`frame` of the usable records of the ``(run, key)`` pairs (:meth:`records`)."""
        return frame(self.records(keyed)[0])


def frame(records) -> pd.DataFrame:
    """One row per record: run fields, summary numbers, and the path of its record (:data:`TABLE_COLUMNS`);
    a plain frame, no objects in its cells beside the per-layer lists."""
    rows = []
    for rec in records:
        s, pv = rec.summary, rec.provenance
        rows.append({**dataclasses.asdict(rec.run), "budget": rec.budget, "key": rec.key, "train_L1": s.train_L1,
                     "test_L1": s.test_L1, "test_LK": s.test_LK, "K": s.K, "active_units": s.active_units,
                     "layer_kl": s.layer_kl, "train_seconds": pv.train_seconds, "device": pv.device,
                     "threads": pv.threads, "epochs": rec.epochs, "path": str(rec.path)})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)
