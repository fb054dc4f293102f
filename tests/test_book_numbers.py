"""Numbers typed into the book's prose (book/*.md and the notebooks' markdown) must come from somewhere
that a test can read: the paper's printed values (lvae_lib.paper), a constant of the code that the prose
names (checked against the code here, so a change of the code fails this test), or the records. Any
other decimal or signed number fails, naming the file and the number: results belong in glued outputs,
generated from the records, never typed."""
import json
import re
from pathlib import Path

import pytest
from scipy import stats

from lvae_lib import analysis, fidelity, paper

ROOT = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"(?<![\w.{^])[−-]?\d+\.\d+|(?<![\w.{^])[−-]\d+(?![\w.])")


def _paper_numbers() -> set[float]:
    out: set[float] = set()

    def walk(v):
        if isinstance(v, bool):
            return
        if isinstance(v, (int, float)):
            out.add(round(float(v), 2))
        elif isinstance(v, dict):
            [walk(x) for x in v.values()]
        elif isinstance(v, (list, tuple)):
            [walk(x) for x in v]

    walk([paper.TABLE1, paper.TABLE2, paper.MNIST_TEXT])
    return out


def _leaky_slope() -> float:
    from lvae_lib.config import preset
    from lvae_lib.model import LadderVAE

    cfg, _ = preset("LVAE+BN+WU", 2)
    return next(m.negative_slope for m in LadderVAE(cfg).modules() if hasattr(m, "negative_slope"))


# number -> (what the prose says it is, the code's value); each checked against the code
CONSTANTS = {
    0.01: ("the active-unit threshold (nats of KL), and Lasagne's default leaky slope, named as such",
           analysis.ACTIVE_KL),
    0.1: ("the leaky rectifier's slope (and chance accuracy of ten classes)", _leaky_slope()),
    0.15: ("the fidelity rule's margin (nats)", fidelity.MARGIN),
    1.96: ("the normal 95% quantile", round(float(stats.norm.ppf(0.975)), 2)),
}
def _iw_mflops_per_sample() -> float:
    import torch

    from lvae_lib.bench import iw_flops
    from lvae_lib.config import preset
    from lvae_lib.model import LadderVAE

    cfg, _ = preset("LVAE+BN+WU", 5)
    model = LadderVAE(cfg).eval()
    return iw_flops(model, torch.bernoulli(torch.full((2, cfg.x_dim), 0.5)))[0] / 1e6


# numbers the prose gives as measurements of the code, by file: number -> (what, how to measure it now)
MEASURED = {"book/evaluation.md": {1.7: ("MFLOP per sample of L_K, 5-layer LVAE", _iw_mflops_per_sample)}}
# numbers that are examples or definitions, by file: (number, why)
DEFINITIONS = {
    "notebooks/fig6_pca.ipynb": {1.0: "the accuracy of a perfect separation"},
    "notebooks/how_to_reproduce.ipynb": {0.25: "an example value of --num-gpus in a command line"},
    "notebooks/reproduction_report.ipynb": {0.9: "the authors' element-wise gradient clip, quoted from their code"},
}


def prose():
    """(file, number, the line around it) for every number in the book's prose (code fences left out)."""
    texts = [(str(f.relative_to(ROOT)), f.read_text()) for f in sorted((ROOT / "book").glob("*.md"))]
    for f in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(f.read_text())
        texts.append((str(f.relative_to(ROOT)),
                      "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")))
    for name, text in texts:
        text = re.sub(r"```.*?```", "", text, flags=re.S)
        text = re.sub(r"`[^`\n]*`", "", text)  # inline code: commands, names
        text = re.sub(r"\b(Secs?\.|Sections?|eqs?\.|Figs?\.|Tables?)\s*\d+(\.\d+)*", "", text)  # references
        for line in text.splitlines():
            for n in NUMBER.findall(line):
                yield name, float(n.replace("−", "-")), line.strip()


def test_the_constants_the_prose_names_are_the_codes():
    for value, (what, code) in CONSTANTS.items():
        assert code == pytest.approx(value), f"the prose says {value} for {what}; the code has {code}"


def test_every_number_typed_into_the_book_comes_from_the_paper_or_the_code():
    known = _paper_numbers()
    bad = []
    for name, n, line in prose():
        if round(n, 2) in known or abs(n) in CONSTANTS or abs(n) in DEFINITIONS.get(name, {}):
            continue
        if n in MEASURED.get(name, {}):
            what, measure = MEASURED[name][n]
            got = measure()
            if abs(got - n) <= 0.05 * abs(n):
                continue
            bad.append(f"{name}: {n:g} ({what}) is {got:.3g} now, in “{line[:120]}”")
            continue
        bad.append(f"{name}: {n:g} in “{line[:120]}”")
    assert not bad, ("numbers typed into the book that neither the paper, the code nor a definition gives "
                     "(glue them from the records instead):\n" + "\n".join(bad))


def test_a_typed_result_is_caught(tmp_path, monkeypatch):
    """The test can fail: a result typed into a chapter is named."""
    book = tmp_path / "book"
    book.mkdir()
    (book / "x.md").write_text("Our LVAE reaches −83.38 nats, the paper's −82.12.\n")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    found = [(n, round(n, 2) in _paper_numbers()) for _, n, _ in prose()]
    assert found == [(-83.38, False), (-82.12, True)]
