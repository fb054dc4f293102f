"""The results store: one folder per run under ``results/<budget>/<dataset>/<label>-<key>/``.

Each record holds ``record.json`` (configs, summary, provenance), ``metrics.csv`` (per epoch)
and ``arrays.npz`` (per-unit KL, PCA projections, image grids).  A record is written into a
temporary folder and renamed into place, with ``record.json`` the marker of completeness,
so a half-written record is never read as complete.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd


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
        p = self.path(run, key)
        rec = json.loads((p / "record.json").read_text())
        rec["path"] = str(p)
        return rec

    def metrics(self, run, key: str) -> pd.DataFrame:
        return pd.read_csv(self.path(run, key) / "metrics.csv")

    def arrays(self, run, key: str) -> dict:
        with np.load(self.path(run, key) / "arrays.npz") as f:
            return dict(f)

    def table(self, runs, budget) -> pd.DataFrame:
        """One row per run: run fields, summary numbers, and the path of its record."""
        rows = []
        for r in runs:
            key = r.key(budget)
            if not self.complete(r, key):
                continue
            rec = self.load(r, key)
            s = rec["summary"]
            rows.append({**rec["run"], "budget": rec["budget"], "key": key, "train_L1": s["train_L1"],
                         "test_L1": s["test_L1"], "test_LK": s["test_LK"], "K": s["K"],
                         "active_units": s["active_units"], "layer_kl": s["layer_kl"],
                         "train_seconds": rec["provenance"]["train_seconds"], "device": rec["provenance"]["device"],
                         "threads": rec["provenance"].get("threads"),
                         "epochs": rec["train_cfg"]["epochs"] + ((rec.get("finetune_cfg") or {}).get("epochs") or 0),
                         "run_obj": r, "path": rec["path"]})
        return pd.DataFrame(rows)
