"""The gate before a faster precision becomes a default: intervals over seeds and images, and the rule."""
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from lvae_lib import experiments as E
from lvae_lib import fidelity
from lvae_lib.results import Store

sys.path.insert(0, str(Path(__file__).parent))
from test_results import fake_record  # noqa: E402


def _store(tmp_path, shift: float, seed_sd: float = 0.02, n=500):
    """fp32 and bf16 records of both models, seeds 0-2; bf16 moved by ``shift`` nats."""
    b = E.get_budget("smoke")
    st = Store(tmp_path, "smoke")
    rng = np.random.default_rng(0)
    base = rng.normal(-90, 5, n)
    for run in fidelity.MODELS:
        for prec, d in (("fp32", 0.0), ("bf16", shift)):
            for s in E.SEEDS:
                r = replace(run, seed=s, precision=prec)
                off = d + seed_sd * (s - 1)
                per = base + off + rng.normal(0, 0.5, n)
                rec = fake_record(r, r.key(b), test_L1=float(per.mean()) - 4, test_LK=float(per.mean()),
                                  active_units=[10 + s])
                st.write(r, r.key(b), rec, [{"epoch": 1}],
                         {"test_L1_per_image": per - 4, "test_LK_per_image": per})
    return tmp_path


def test_a_precision_that_moves_nothing_passes(tmp_path):
    t = fidelity.compare("bf16", "smoke", _store(tmp_path, shift=0.0))
    assert len(t) == 10 and t["passes"].all(), t
    assert fidelity.decide(t)[0]


def test_a_precision_that_costs_a_fifth_of_a_nat_stays_opt_in(tmp_path):
    t = fidelity.compare("bf16", "smoke", _store(tmp_path, shift=-0.2))
    ok, why = fidelity.decide(t)
    assert not ok and "stays opt-in" in why
    nats = t[t.metric != "active units"]
    assert not nats["passes"].any() and (nats["difference"].round(1) == -0.2).all()


def test_missing_records_leave_it_undecided(tmp_path):
    t = fidelity.compare("bf16", "smoke", tmp_path)
    ok, why = fidelity.decide(t)
    assert not ok and why.startswith("not decided: 10 of 10")
