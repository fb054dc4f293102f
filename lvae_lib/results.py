"""The results store: one folder per run under ``results/<budget>/<dataset>/<label>-<key>/``.

Each record holds ``record.json`` (configs, summary, provenance), ``metrics.csv`` (per epoch)
and ``arrays.npz`` (per-unit KL, PCA projections, image grids).  A record is written into a
temporary folder and renamed into place, with ``record.json`` the marker of completeness,
so a half-written record is never read as complete. ``record.json`` carries the checksums of its own
content and of the other files (:func:`seal`); a record that changed after it was written, or that lies
in another run's folder, is named and never used (:func:`check`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd


class BadRecord(ValueError):
    """A record whose files changed after it was written, or that lies in another run's folder."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _content_sha(record: dict) -> str:
    return hashlib.sha256(json.dumps({k: v for k, v in record.items() if k != "checksums"}, sort_keys=True).encode()).hexdigest()


def seal(folder: Path) -> None:
    """Add to ``folder/record.json`` the checksums of its own content and of the record's other files."""
    folder = Path(folder)
    rec = json.loads((folder / "record.json").read_text())
    rec["checksums"] = {"record": _content_sha(rec),
                        **{f.name: _sha256(f) for f in sorted(folder.iterdir()) if f.name != "record.json"}}
    (folder / "record.json").write_text(json.dumps(rec, indent=1))


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
                        f"sealed); not used")
    changed = [n for n, sha in sums.items()
               if (_content_sha(rec) if n == "record" else _sha256(folder / n) if (folder / n).exists() else None) != sha]
    if changed:
        raise BadRecord(f"{folder}: {', '.join('record.json' if n == 'record' else n for n in changed)} changed after "
                        f"the record was written (checksum mismatch); not used. `run ... --refresh` cannot fix "
                        f"it: restore it from git, or delete the folder and train it again")


TABLE_COLUMNS = ["dataset", "dataset_name", "variant", "layers", "finetune", "seed", "label", "budget", "key",
                 "train_L1", "test_L1", "test_LK", "K", "active_units", "layer_kl", "train_seconds", "device",
                 "threads", "epochs", "run_obj", "path"]


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
        """Whether the record stores per-test-image estimates (records made before they were kept do not)."""
        with np.load(self.path(run, key) / "arrays.npz") as f:
            return "test_LK_per_image" in f.files

    def missing(self, runs, budget, refresh: bool = False) -> list:
        """The runs (of ``budget``) that have no complete record here, in their order; with ``refresh``,
        also those whose record has no per-image estimates."""
        return [r for r in runs if not self.complete(r, k := r.key(budget)) or (refresh and not self.has_per_image(r, k))]

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
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)

    def write(self, run, key: str, record: dict, history: list[dict], arrays: dict) -> Path:
        with self._atomic(run, key) as tmp:
            pd.DataFrame(history).to_csv(tmp / "metrics.csv", index=False, float_format="%.5g")
            np.savez_compressed(tmp / "arrays.npz", **arrays)
            (tmp / "record.json").write_text(json.dumps(record, indent=1))
        return self.path(run, key)

    def write_files(self, run, key: str, files: dict[str, bytes]) -> Path:
        """Write a record received as bytes (e.g. from a Ray worker), ``record.json`` last."""
        with self._atomic(run, key) as tmp:
            for name, data in sorted(files.items(), key=lambda kv: kv[0] == "record.json"):
                (tmp / name).write_bytes(data)
        return self.path(run, key)

    def load(self, run, key: str) -> dict:
        """The record of ``run``, checked (:func:`check`): a changed or misplaced record raises :class:`BadRecord`."""
        p = self.path(run, key)
        try:
            rec = json.loads((p / "record.json").read_text())
        except (OSError, ValueError) as e:
            raise BadRecord(f"{p / 'record.json'} cannot be read ({type(e).__name__}: {e}); not used") from None
        check(p, rec, key, run.label)
        rec["path"] = str(p)
        return rec

    def metrics(self, run, key: str) -> pd.DataFrame:
        return pd.read_csv(self.path(run, key) / "metrics.csv")

    def arrays(self, run, key: str) -> dict:
        with np.load(self.path(run, key) / "arrays.npz") as f:
            return dict(f)

    def table(self, runs, budget) -> pd.DataFrame:
        """One row per run: run fields, summary numbers, and the path of its record."""
        rows, bad = [], []
        for r in runs:
            key = r.key(budget)
            if not self.complete(r, key):
                continue
            try:
                rec = self.load(r, key)
            except BadRecord as e:  # named, never shown as numbers
                warnings.warn(str(e), stacklevel=2)
                bad.append(str(e))
                continue
            s = rec["summary"]
            rows.append({**rec["run"], "budget": rec["budget"], "key": key, "train_L1": s["train_L1"],
                         "test_L1": s["test_L1"], "test_LK": s["test_LK"], "K": s["K"],
                         "active_units": s["active_units"], "layer_kl": s["layer_kl"],
                         "train_seconds": rec["provenance"]["train_seconds"], "device": rec["provenance"]["device"],
                         "threads": rec["provenance"].get("threads"),
                         "epochs": rec["train_cfg"]["epochs"] + ((rec.get("finetune_cfg") or {}).get("epochs") or 0),
                         "run_obj": r, "path": rec["path"]})
        df = pd.DataFrame(rows, columns=TABLE_COLUMNS if not rows else None)  # empty: still the columns
        df.attrs["bad_records"] = bad
        return df
