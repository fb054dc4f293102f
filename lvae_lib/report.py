"""Paper-vs-ours tables, the per-figure data the notebooks plot and the weight checks' table, read from the
results store. The claims and their verdicts are :mod:`lvae_lib.claims`; run times and the bench, :mod:`lvae_lib.bench`."""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import evidence as ev
from .config import VARIANTS, bottom_up
from .experiments import BUDGET_ORDER, describe_budget
from . import paper
from .frames import arrays_at, fmt, knn, seed_mean
from .results import Store, kl_snapshots, read_metrics


def curves(df, layers=5) -> dict:
    """variant -> [per-epoch metrics of its ``layers``-layer model, one per seed] (Fig. 2)."""
    out: dict[str, list] = {}
    if not len(df):
        return out
    d = df[(df["layers"] == layers) & (df["finetune"] == "")]
    for r in d.itertuples():
        out.setdefault(r.variant, []).append(read_metrics(r.path))
    return out


def sample_grids(df, dataset: str) -> dict:
    """Figs. 9-10's panels for one dataset: test images, the LVAE's reconstructions, its samples and the
    VAE's (5 layers, the figure's budget), then the same models' samples at each other budget shown."""
    d = df[df["dataset"] == dataset]
    if not len(d):
        return {}
    lvae, vae = arrays(d, "LVAE+BN+WU"), arrays(d, "VAE+BN+WU")
    grids = {"a) data": lvae["data"], "b) LVAE+BN+WU: reconstructions": lvae["reconstructions"],
             "c) LVAE+BN+WU: samples": lvae["samples"], "d) VAE+BN+WU: samples": vae["samples"]}
    for b in list(dict.fromkeys(d["budget"]))[1:]:  # the paper budget's models, where some exist
        for v in ("LVAE+BN+WU", "VAE+BN+WU"):
            if ((d["variant"] == v) & (d["budget"] == b)).any():
                grids[f"{'abcdefgh'[len(grids)]}) {shown_as(d, v, b)}: samples"] = arrays(d, v, budget=b)["samples"]
    return grids


def layer_kl_table(df) -> pd.DataFrame:
    """Each record's test-set KL per layer (nats), a column per layer (Fig. 5's numbers)."""
    out = df[["budget", "variant", "seed"]].reset_index(drop=True)
    kl = pd.DataFrame([list(a) for a in df["layer_kl"]]).round(2).abs()  # abs: no "-0.0" for a KL of zero
    kl.columns = [f"layer {i + 1}" for i in kl.columns]
    return pd.concat([out, kl], axis=1)


def warmup_curves(df, variants=("LVAE+BN+WU", "VAE+BN+WU"), layers=5) -> tuple[str, dict]:
    """The training curves of seed 0 of ``variants`` at the largest budget that has all of them:
    ``(budget, {variant: per-epoch metrics})`` (the warm-up figure)."""
    for b in BUDGET_ORDER:
        d = df[(df["budget"] == b) & (df["seed"] == 0)]
        got = {v: c[0] for v, c in curves(d, layers).items() if v in variants}
        if len(got) == len(variants):
            return b, {v: got[v] for v in variants}
    return "", {}


def shown_as(df, variant: str, budget: str) -> str:
    """A model's name in a figure of ``df``: its variant, and its budget where the figure draws records
    of several (the paper budget's models beside a cpu grid: :meth:`lvae_lib.query.RecordSet.shown`)."""
    if not len(df) or df["budget"].nunique() < 2:
        return variant
    return f"{variant} ({describe_budget(budget, df['dataset'].iloc[0], short=True)})"


def _firsts(df, layers=5):
    """The first row (the notebook's seed) of each ``layers``-layer model of each budget, in ``df``'s order."""
    return df[(df["layers"] == layers) & (df["finetune"] == "")].drop_duplicates(["budget", "variant"]).itertuples()


def snapshots(df, layers=5) -> dict:
    """model (:func:`shown_as`) -> {epoch: [per-unit KL per layer]} (Fig. 4)."""
    return {shown_as(df, r.variant, r.budget): kl_snapshots(arrays_at(r.path))
            for r in _firsts(df, layers)} if len(df) else {}


def arrays(df, variant, layers=5, finetune="", budget=None) -> dict:
    """The arrays of the first record of a model in ``df`` (of ``budget``, where given)."""
    d = df if budget is None else df[df["budget"] == budget]
    r = d[(d["variant"] == variant) & (d["layers"] == layers) & (d["finetune"] == finetune)].iloc[0]
    return arrays_at(r["path"])


def projections(df, layers=5) -> tuple[dict, np.ndarray]:
    """model (:func:`shown_as`) -> [2-D PCA of z_i per layer], and the class labels (Fig. 6; every record
    projects the same first test images)."""
    out, labels = {}, None
    for r in (_firsts(df, layers) if len(df) else []):
        a = arrays_at(r.path)
        out[shown_as(df, r.variant, r.budget)] = [a[f"pca_l{i}"] for i in range(1, layers + 1)]
        labels = a.get("pca_labels")
    return out, labels


def layer_knn(df, layers=5) -> pd.DataFrame:
    """The ``layers``-layer models' rows (one per seed) with a ``knn`` column: per layer, the 10-NN
    accuracy of the digit class in Fig. 6's PCA plane (:func:`lvae_lib.analysis.knn_correct`)."""
    d = df[(df["layers"] == layers) & (df["finetune"] == "")].copy()
    d["knn"] = [[knn(r["path"], i).mean() for i in range(1, layers + 1)] for _, r in d.iterrows()]
    return d


def layers_table(df, metric="test_LK") -> pd.DataFrame:
    """variant x layers table of one metric (ours): the mean over seeds, ``± sd (n)`` where there are several."""
    d = seed_mean(df[df["finetune"] == ""])
    cells = d.assign(cell=[fmt(r[metric], r[f"{metric}_sd"], r["n_seeds"]) for _, r in d.iterrows()])
    return cells.pivot(index="variant", columns="layers", values="cell").fillna("")


def training_upsets(df, drop: float = 10.0) -> pd.DataFrame:
    """The blow-ups a final number hides: each epoch after warm-up (``beta`` 1 in this epoch and the one
    before) at which a record's training ELBO (the epoch's mean, training mode) fell more than ``drop`` nats
    below the epoch before's, with the model, the ELBO before, at that epoch and at the end. Empty where no
    record of ``df`` has one."""
    cols = ["model", "seed", "budget", "epoch", "train ELBO before", "at that epoch", "at the end (epoch)"]
    out = []
    for _, r in df.iterrows():
        if not isinstance(r.get("path"), str):
            continue
        m = read_metrics(r["path"])
        e, beta = m["train_elbo"].to_numpy(float), m["beta"].to_numpy(float) if "beta" in m else np.ones(len(m))
        for i in np.flatnonzero((e[1:] < e[:-1] - drop) & (beta[1:] >= 1) & (beta[:-1] >= 1)) + 1:
            out.append([r["label"], r["seed"], r["budget"], int(m["epoch"].iloc[i]), f"{e[i - 1]:,.2f}", f"{e[i]:,.2f}",
                        f"{e[-1]:,.2f} ({int(m['epoch'].iloc[-1])})"])
    return pd.DataFrame(out, columns=cols)


def top_budget(d: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``d`` that belong to its largest budget (paper > cpu > smoke): a "best of" is taken
    within one budget, never across budgets."""
    for b in BUDGET_ORDER:
        if (d["budget"] == b).any():
            return d[d["budget"] == b]
    return d


def _with_sd(rows) -> pd.DataFrame:
    """A compare table's rows as a frame, with its ``ours: sd`` over seeds as a number (2 decimals, empty for
    one seed) beside ``seeds``: the reproduction table and its plot read them, :func:`fmt` formats them."""
    out = pd.DataFrame(rows)
    out["ours: sd"] = out["ours: sd"].astype(float).round(2)
    out["seeds"] = out["seeds"].astype("Int64")
    if "ours: K" in out:
        out["ours: K"] = out["ours: K"].astype("Int64")
    return out


def mnist_text_compare(df) -> pd.DataFrame:
    """The MNIST numbers the paper states in its text (Fig. 3) beside ours."""
    d = seed_mean(df[(df["finetune"] == "") & (df["dataset"] == "mnist")]) if len(df) else df
    vae = top_budget(d[d["variant"].map(bottom_up).astype(bool)]) if len(d) else d
    lvae5 = top_budget(d[(d["variant"] == "LVAE+BN+WU") & (d["layers"] == 5)]) if len(d) else d
    best = lambda t, m: t.loc[t[m].idxmax()] if len(t) else None  # noqa: E731
    # a best of our bottom-up models says over how many it is taken: at a budget with only part of the
    # grid (the paper budget's one 5-layer VAE+BN+WU) it is not the paper's best of every variant and depth
    at = "" if not len(vae) else describe_budget(vae["budget"].iloc[0], "mnist", short=True)
    of = "" if not len(vae) else (f" (the only bottom-up model trained for {at})" if len(vae) == 1
                                  else f" (best of {len(vae)} bottom-up models trained for {at})")
    ours = {
        ("test L_1", "LVAE+BN+WU"): (best(lvae5, "test_L1"), "test_L1"),
        ("test L_1", "best VAE (3 layers)"): (best(vae, "test_L1"), "test_L1"),
        ("test L_5000", "LVAE+BN+WU"): (best(lvae5, "test_LK"), "test_LK"),
        ("test L_5000", "best VAE"): (best(vae, "test_LK"), "test_LK"),
    }
    rows = []
    for p in paper.MNIST_TEXT:
        r, m = ours[(p["metric"], p["variant"])]
        rows.append({"metric": p["metric"], "model": p["variant"], "paper": p["value"],
                     "ours": None if r is None else round(float(r[m]), 2),
                     "ours: sd": None if r is None else r[f"{m}_sd"], "seeds": None if r is None else r["n_seeds"],
                     "ours: model": "" if r is None else f"{r['variant']}, {r['layers']} layers"
                                                          + (of if p["variant"].startswith("best VAE") else ""),
                     "ours: metric": "" if r is None else p["metric"].replace("5000", str(int(r["K"]))),
                     "budget": "" if r is None else r["budget"]})
    return _with_sd(rows)


# the rows of Table 1 that our records answer, by our run's fine-tuning ("" for the base model)
TABLE1_OURS = {"LVAE, 5-layer": "", "LVAE, 5-layer + finetuning": "ft", "LVAE, 5-layer + finetuning + IW=10": "ft-iw10",
               "LVAE, 5-layer + the same extra epochs with 1 sample (our control, not in the paper)": "ft-control"}


def table1_compare(df) -> pd.DataFrame:
    """Table 1: the paper's rows, with ours (and the bound and budget it was measured with) beside the LVAE rows,
    all of one budget, a row of ours only (the control of the fine-tuning claim), and last the base LVAE of any
    larger budget, which is never placed above fine-tuning of a smaller one."""
    d = df[(df["dataset"] == "mnist") & (df["variant"] == "LVAE+BN+WU") & (df["layers"] == 5)] if len(df) else df
    means = seed_mean(d)
    # the LVAE rows come from one budget, that of the largest fine-tuning records (so that fine-tuning is read
    # against its own base); a base of a larger budget gets a row of its own, after them
    tuned = [b for b in BUDGET_ORDER if len(means) and ((means["budget"] == b) & (means["finetune"] != "")).any()]
    budget = tuned[0] if tuned else (means["budget"].iloc[0] if len(means) else None)
    by_ft = {r.finetune: r for r in means.itertuples() if r.budget == budget}
    ours = {name: by_ft.get(ft) for name, ft in TABLE1_OURS.items()}
    control = next(name for name, ft in TABLE1_OURS.items() if ft == "ft-control")
    base = "LVAE, 5-layer"
    larger = [r for r in means.itertuples() if r.finetune == "" and BUDGET_ORDER.index(r.budget) < BUDGET_ORDER.index(budget)] \
        if budget else []
    extra = [(f"{base}, {describe_budget(r.budget, 'mnist', short=True)}", dict((n, v) for n, v, _ in paper.TABLE1)[base], r) for r in larger]
    rows = []
    for name, value, r in [(n, v, ours.get(n)) for n, v, _ in paper.TABLE1] + [(control, None, ours.get(control))] + extra:
        rows.append({"model": name, "paper": value, "ours": round(r.test_LK, 2) if r else None,
                     "ours: sd": r.test_LK_sd if r else None, "seeds": r.n_seeds if r else None,
                     "ours: metric": f"L_{int(r.K)}" if r else "", "budget": r.budget if r else ""})
    return _with_sd(rows)


def table2_compare(df) -> pd.DataFrame:
    """Table 2: paper and ours side by side for every dataset, variant and depth."""
    rows = []
    df = seed_mean(df)
    for dname, values in paper.TABLE2.items():
        ds = paper.TABLE2_OURS[dname]
        for v, per_layer in values.items():
            for L, pv in enumerate(per_layer, start=1):
                o = df[(df["dataset"] == ds) & (df["variant"] == v) & (df["layers"] == L) & (df["finetune"] == "")]
                rows.append({"dataset (paper)": dname, "dataset (ours)": o["dataset_name"].iloc[0] if len(o) else "not run",
                             "variant": v, "layers": "-".join(["64", "32", "16", "8", "4"][:L]), "paper": pv,
                             "ours": round(float(o["test_LK"].iloc[0]), 2) if len(o) else None,
                             "ours: sd": o["test_LK_sd"].iloc[0] if len(o) else None,
                             "seeds": o["n_seeds"].iloc[0] if len(o) else None,
                             "ours: K": int(o["K"].iloc[0]) if len(o) else pd.NA,
                             "budget": o["budget"].iloc[0] if len(o) else ""})
    return _with_sd(rows)


def table2_grid(df, dataset: str = "OMNIGLOT") -> pd.DataFrame:
    """Table 2 as the paper prints it, for one of its datasets: a row per variant and source (the paper's
    value, then ours: the seed mean of our L_K), a column per depth (the latent sizes)."""
    t = table2_compare(df)
    t = t[t["dataset (paper)"] == dataset]
    rows = []
    for v, g in t.groupby("variant", sort=False):
        for src, col in (("paper", "paper"), ("ours", "ours")):
            rows.append({"variant": v, "": src, **{lay: (f"{x:.2f}" if pd.notna(x) else "") for lay, x in zip(g["layers"], g[col])}})
    return pd.DataFrame(rows)


def table2_note(df, unavailable=()) -> str:
    """The line above Table 2: what our numbers are (budget, K, seeds, data), and why a dataset has none
    (``unavailable``: (dataset, why) pairs, :attr:`lvae_lib.query.RecordSet.unavailable`)."""
    t = table2_compare(df)
    ours = t[t["ours"].notna()]
    from .plots import caption  # here: plots imports report

    out = [caption(df)]
    if len(ours):
        ks = sorted({int(k) for k in ours["ours: K"].dropna()})
        seeds = sorted({int(n) for n in ours["seeds"].dropna()})
        n = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]} to {seeds[-1]}"
        out.append(f"Our values are test L_{'/'.join(map(str, ks))}, each the mean over {n} seed(s).")
    for ds, why in dict(unavailable).items():
        out.append(f"No {ds.upper()} run here: {why.rstrip('.')}; its rows are the paper's alone.")
    return " ".join(out)


# ----------------------------------------------------------------------------- the reproduction report
def reproduction_table(df) -> pd.DataFrame:
    """pythae-style: from (the paper's figure or table) | dataset | metric | model | paper | ours | our model | our K | budget |
    ours - paper, for every number the paper prints (its text on Fig. 3, Table 1, Table 2), from the
    records in ``df``. ``ours - paper`` is given only where our bound is the paper's (same K): L_K
    rises with K, so a difference across Ks would mix the K gap into the comparison."""
    rows = []
    for _, r in mnist_text_compare(df).iterrows():
        rows.append({"from": "Fig. 3 (text)", "dataset": "MNIST", "metric": r["metric"], "model": r["model"],
                     "paper": r["paper"], "ours": r["ours"], "our sd": r["ours: sd"], "our seeds": r["seeds"],
                     "our model": r["ours: model"], "our metric": r["ours: metric"], "budget": r["budget"]})
    t1 = table1_compare(df)
    for _, r in t1[t1["model"].str.startswith("LVAE, 5-layer") & t1["paper"].notna()].iterrows():
        rows.append({"from": "Table 1", "dataset": "MNIST", "metric": "test L_5000", "model": r["model"],
                     "paper": r["paper"], "ours": r["ours"], "our sd": r["ours: sd"], "our seeds": r["seeds"],
                     "our model": r["model"] if pd.notna(r["ours"]) else "",
                     "our metric": f"test {r['ours: metric']}" if r["ours: metric"] else "", "budget": r["budget"]})
    for _, r in table2_compare(df).iterrows():
        if pd.isna(r["paper"]):
            continue
        rows.append({"from": "Table 2", "dataset": f"{r['dataset (paper)']} (ours: {r['dataset (ours)']})",
                     "metric": "test L_5000", "model": f"{r['variant']}, {r['layers']}", "paper": r["paper"],
                     "ours": r["ours"], "our sd": r["ours: sd"], "our seeds": r["seeds"],
                     "our model": f"{r['variant']}, {r['layers']}" if pd.notna(r["ours"]) else "",
                     "our metric": f"test L_{int(r['ours: K'])}" if pd.notna(r["ours"]) else "",
                     "budget": r["budget"]})
    out = pd.DataFrame(rows)
    same_k = out["our metric"] == out["metric"]
    out["ours - paper"] = (out["ours"].astype(float) - out["paper"].astype(float)).where(same_k).round(2)
    return out


def compact(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The reproduction table as the book prints it: the datasets of which we have no record at all
    (NORB where it cannot be downloaded) left out and named instead, one ``ours`` cell with its spread,
    and the dataset's label without the repetition of our stand-in's name."""
    have = table.groupby("dataset")["ours"].transform(lambda o: o.notna().any())
    missing = list(dict.fromkeys(d.split(" (")[0] for d in table.loc[~have, "dataset"]))
    t = table[have].copy()
    t["ours"] = ["" if pd.isna(o) else fmt(o, sd, n) for o, sd, n in zip(t["ours"], t["our sd"], t["our seeds"])]
    t["dataset"] = t["dataset"].str.split(" \\(").str[0]
    return t.drop(columns=["our sd", "our seeds"]), missing


CHECK_NAMES = {"bn_recomputed": "batch norm recomputed over the training set, against the running averages"}


def _check_intervals(c) -> list:
    """The 95% interval of each weight check's per-image difference (its rows' ``diff`` and ``diff_se``)."""
    return [ev.normal(d, se, n, "images") for d, se, n in zip(c["diff"], c["diff_se"], c["n_images"])]


def weight_checks_table(results_dir=None, budget: str = "paper") -> pd.DataFrame:
    """The checks of the kept models (:func:`lvae_lib.runner.weight_checks`) as the book shows them: per
    model and check, our new estimate, the one it is compared with, their difference per test image with its
    95% interval, and where it ran."""
    from .experiments import DEFAULT_RESULTS, get_budget

    c = Store(results_dir or DEFAULT_RESULTS, budget).checks()
    k_ref = get_budget(budget).eval_k  # each record's own K: its budget's
    if not len(c):
        return pd.DataFrame()
    ivs = _check_intervals(c)
    what = [CHECK_NAMES.get(ch, f"L_{k} against L_{k_ref} of its first samples, first {n:,} test images")
            for ch, k, n in zip(c["check"], c["k"], c["n_images"])]
    return pd.DataFrame({
        "model": c["label"] + ", seed " + c["seed"].astype(str), "check": what,
        "ours": c["value"].round(2), "compared with": c["reference"].round(2),
        "difference [95% interval]": [f"{iv.mean:+.3f} [{iv.lo:+.3f}, {iv.hi:+.3f}]" for iv in ivs],
        "images": c["n_images"], "ran on": c["device"] + ", " + c["date"]})


def _signed(x: float) -> str:
    """``+0.042``; a difference that rounds to zero at three decimals gets one more (``-0.0003``, not
    ``-0.000``), and one that rounds to zero at four is ``0.000``."""
    return next((f"{x:+.{d}f}" for d in (3, 4) if round(x, d)), "0.000")


def weight_checks_in_words(results_dir=None, budget: str = "paper") -> str:
    """One sentence per check, generated from the checks: the range of the differences, and where their
    intervals lie against zero."""
    from .experiments import DEFAULT_RESULTS, get_budget

    c = Store(results_dir or DEFAULT_RESULTS, budget).checks()
    K = get_budget(budget).eval_k
    out = []
    for ch, g in c.groupby("check", sort=False):
        sides = [iv.side() for iv in _check_intervals(g)]
        span = f"by {_signed(g['diff'].min())} to {_signed(g['diff'].max())} nats over {len(g)} model(s)"
        excl = sum(sd != 0 for sd in sides)
        where = ("every interval includes zero" if excl == 0 else "every interval lies above zero" if min(sides) == 1
                 else "every interval lies below zero" if max(sides) == -1 else f"{excl} of {len(g)} intervals exclude zero")
        if ch == "bn_recomputed":
            out.append(f"Recomputing the batch-norm statistics over the training set moves test L_{K} {span} ({where}).")
        else:
            out.append(f"L_{g['k'].iloc[0]} exceeds L_{K} of the same samples {span} ({where}): "
                       f"so far is L_{K} from converged in K.")
    return " ".join(out)


def study_settings() -> pd.DataFrame:
    """The authors'-settings study's variants (:data:`lvae_lib.claims.STUDY_BASE`), each with the model it
    changes and what it sets there, read from the variant table."""
    from .claims import STUDY_BASE

    return pd.DataFrame([{"variant": n, "changes": b, "sets": ", ".join(f"{k} = {v}" for k, v in VARIANTS[n].model + VARIANTS[n].train)}
                         for n, b in STUDY_BASE.items()])


def study_status(df, budget: str = "cpu", seeds=(0, 1, 2)) -> pd.DataFrame:
    """Which runs of the study (its variants and the models they change, 5 layers) have a record at ``budget``:
    a row per model, a column per seed, and the number of runs still to train."""
    from .claims import STUDY_BASE

    names = list(dict.fromkeys([*STUDY_BASE.values(), *STUDY_BASE]))
    at = df[(df["budget"] == budget) & (df["layers"] == 5)] if len(df) else df
    rows = [{"model": n, **{f"seed {s}": "record" if len(at) and ((at["variant"] == n) & (at["seed"] == s)).any() else "-"
                            for s in seeds}} for n in names]
    return pd.DataFrame(rows)
