"""The reproduction report: paper numbers beside ours, and claim verdicts computed from the numbers."""
import pandas as pd
import pytest

from lvae_lib import paper, report


def table(rows):
    """A records table like ``Store.table`` returns, from (dataset, variant, layers, finetune, test_L1, test_LK, au, kl)."""
    out = []
    for ds, v, L, ft, l1, lk, au, kl in rows:
        out.append({"dataset": ds, "dataset_name": ds.upper(), "variant": v, "layers": L, "finetune": ft, "seed": 0,
                    "test_L1": l1, "test_LK": lk, "train_L1": l1 + 1, "K": 1000, "budget": "cpu",
                    "active_units": au, "layer_kl": kl, "key": f"{ds}{v}{L}{ft}", "train_seconds": 60.0})
    df = pd.DataFrame(out)
    df.attrs.update(results_dir="unused", budget="cpu")
    return df


AU5, KL5 = [64, 32, 16, 6, 1], [11.0, 8.0, 4.0, 0.6, 1.5]
PAPERLIKE = [
    ("mnist", "VAE", 5, "", -95.0, -90.0, [60, 10, 0, 0, 0], [20.0, 1.0, 0.0, 0.0, 0.0]),
    ("mnist", "VAE+BN", 5, "", -90.0, -86.0, [64, 20, 2, 0, 0], [15.0, 5.0, 1.0, 0.0, 0.0]),
    ("mnist", "VAE+BN+WU", 5, "", -88.0, -83.4, [64, 32, 5, 1, 0], [9.6, 9.8, 5.6, 1.6, 0.0]),
    ("mnist", "LVAE+BN+WU", 5, "", -87.4, -83.3, AU5, KL5),
    ("mnist", "LVAE+BN+WU", 2, "", -89.0, -85.0, [64, 32], [20.0, 5.0]),
    ("mnist", "VAE+BN+WU", 2, "", -89.5, -85.5, [64, 32], [20.0, 4.0]),
    ("mnist", "LVAE+BN+WU", 5, "ft", -86.0, -82.9, AU5, KL5),
    ("omniglot28", "VAE", 5, "", -120.0, -112.2, [50, 1, 0, 0, 0], KL5),
    ("omniglot28", "VAE+BN", 5, "", -114.0, -107.9, [64, 10, 0, 0, 0], KL5),
    ("omniglot28", "VAE+BN+WU", 5, "", -111.0, -104.0, AU5, KL5),
]


def verdicts(df):
    c = report.claims(df)
    return dict(zip(c["claim"], c["verdict"]))


def test_claims_hold_when_the_numbers_say_so():
    v = verdicts(table(PAPERLIKE))
    assert v["LVAE+BN+WU beats the best VAE of the same depth on test L_1 (MNIST, 2-5 layers)"] == "holds"
    assert v["batch norm raises the test likelihood of the 5-layer VAE"] == "holds"
    assert v["warm-up raises it further"] == "holds"
    assert v["the LVAE keeps active units in every layer (5 layers)"] == "holds"
    assert v["... and more active units in total than VAE+BN+WU"] == "holds"
    assert v["fine-tuning (10 MC samples, annealed lr) improves L_K"] == "holds"
    assert v["on OMNIGLOT the LVAE beats the best VAE of the same depth (test L_K)"] == "not run"  # no LVAE
    assert v["on OMNIGLOT too, batch norm raises the test likelihood of the 5-layer VAE"] == "holds"
    assert v["... and warm-up raises it further"] == "holds"
    assert v["training with 10 importance samples improves it further"] == "not run"  # no ft-iw10 record


def test_claims_fail_when_the_numbers_say_so():
    rows = [list(r) for r in PAPERLIKE]
    rows[3][5] = -84.0  # the 5-layer LVAE now worse than VAE+BN+WU on L_K
    rows[3][6] = [64, 32, 0, 0, 0]  # and with inactive upper layers
    rows[-1][5] = -108.0  # OMNIGLOT: warm-up now lowers the likelihood
    v = verdicts(table([tuple(r) for r in rows]))
    assert v["... and on test L_K, the estimate of log p(x)"] == "does not hold"
    assert v["the LVAE keeps active units in every layer (5 layers)"] == "does not hold"
    assert v["LVAE+BN+WU beats the best VAE of the same depth on test L_1 (MNIST, 2-5 layers)"] == "holds"
    assert v["... and warm-up raises it further"] == "does not hold"
    assert v["warm-up raises it further"] == "holds"  # MNIST unchanged


def test_fig7_claim_lvae_without_batch_norm():
    nobn = ("mnist", "LVAE+WU", 5, "", -95.0, -90.0, AU5, KL5)
    claim = "the LVAE without batch norm (LVAE+WU) is worse than LVAE+BN+WU at every depth (test L_K)"
    assert verdicts(table(PAPERLIKE))[claim] == "not run"
    assert verdicts(table(PAPERLIKE + [nobn]))[claim] == "holds"
    better = nobn[:5] + (-83.0,) + nobn[6:]  # now above the LVAE+BN+WU's -83.3
    assert verdicts(table(PAPERLIKE + [better]))[claim] == "does not hold"
    c = report.claims(table(PAPERLIKE + [nobn]), "fig7")
    assert claim in set(c["claim"]) and "L=5: -90.00 vs -83.30" in c.set_index("claim").loc[claim, "ours"]


def test_claims_of_one_figure():
    c = report.claims(table(PAPERLIKE), "fig4")
    assert len(c) == 2 and (c["figure"] == "fig4").all()


def test_reproduction_table_puts_ours_beside_every_printed_number():
    t = report.reproduction_table(table(PAPERLIKE))
    n_table2 = sum(v is not None for d in paper.TABLE2.values() for per in d.values() for v in per)
    assert len(t) == len(paper.MNIST_TEXT) + 3 + n_table2
    row = t[(t["figure/table"] == "Fig. 3 (text)") & (t["metric"] == "test L_1") & (t["model"] == "LVAE+BN+WU")].iloc[0]
    assert row["paper"] == -85.23 and row["ours"] == -87.4 and row["budget"] == "cpu"
    assert row["ours - paper"] == pytest.approx(-2.17)
    ft = t[t["model"] == "LVAE, 5-layer + finetuning"].iloc[0]
    assert ft["ours"] == -82.9 and ft["ours: metric"] == "L_1000"
    assert t[t["model"] == "LVAE, 5-layer + finetuning + IW=10"]["ours"].isna().all()
    assert t[t["dataset"].str.startswith("NORB")]["ours"].isna().all()  # never invented


def test_claims_never_compare_across_budgets():
    cpu5 = [r for r in PAPERLIKE if r[2] == 5 and r[3] == ""]  # the four 5-layer models at cpu
    smoke2 = [("mnist", "LVAE+BN+WU", 2, "", -460.0, -450.0, [0, 0], [0.0, 0.0])]
    df = pd.concat([table(cpu5), table(smoke2).assign(budget="smoke")], ignore_index=True)
    c = report.claims(df).set_index("claim")
    depth = c.loc["the LVAE improves with depth: 5 layers beat 2 (test L_K)"]
    assert depth["verdict"] == "not run"  # 5 layers at cpu, 2 layers at smoke: not comparable
    bn = c.loc["batch norm raises the test likelihood of the 5-layer VAE"]
    assert bn["budget"] == "cpu" and bn["verdict"] == "holds"
    assert list(report.claims(df.iloc[:0]).columns) == ["figure", "claim", "ours", "budget", "verdict"]


def test_compute_totals_count_a_fine_tuned_models_base_once():
    df = table(PAPERLIKE)  # 60 s each; the ft record's 60 s stand for base + fine-tuning
    df.loc[df["finetune"] == "ft", "train_seconds"] = 60.0 + 36.0
    tot = report.budget_totals(df).set_index("dataset_name")
    n_mnist = (df["dataset"] == "mnist").sum()
    assert tot.loc["MNIST", "records"] == n_mnist
    assert tot.loc["MNIST", "hours"] == round(((n_mnist - 1) * 60.0 + 36.0) / 3600, 2)
    alone = report.budget_totals(df[df["finetune"] == "ft"])  # without its base: all of it counts
    assert alone["hours"].iloc[0] == round(96.0 / 3600, 2)
