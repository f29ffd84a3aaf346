"""The language-modelling study (``experiments.lm``): its quick run end to end on the real text,
the count-based baselines, the noise rule and the parameter matching."""

import json
import math
import shutil

import numpy as np
import pytest

from experiments import lm
from experiments.lib import noise
from experiments.lib.lm import baselines, runs
from rnn_jax.data.text import BOUNDARY, VOCAB_SIZE, Documents
from tests.test_train import DATA_DIR


def docs(texts: list[str]) -> Documents:
    return Documents.from_bytes([np.frombuffer(t.encode(), np.uint8) for t in texts])


def test_contexts_stop_at_the_review_and_the_add_k_models_match_their_formulas():
    train = docs(["abab", "ba"])
    targets, contexts = baselines.targets_and_contexts(train, 3)
    a, b = ord("a"), ord("b")
    assert targets.tolist() == [a, b, a, b, BOUNDARY, b, a, BOUNDARY]
    # Nothing before a review's boundary is visible: it reads as the boundary.
    assert contexts[:, -1].tolist() == [BOUNDARY, a, b, a, b, BOUNDARY, b, a]
    assert contexts[5].tolist() == [BOUNDARY, BOUNDARY]
    test = docs(["ab"])  # Predicted: a after B, b after a, B after b.
    counts = np.bincount(targets, minlength=VOCAB_SIZE) + baselines.ADD_K
    expected = -np.mean(np.log2(counts[[a, b, BOUNDARY]] / counts.sum()))
    assert baselines.unigram(train, test) == pytest.approx(expected)
    # Counted by hand from the targets above: after B come a and b (a: 1 of 2); after a come
    # b, b, B (b: 2 of 3); after b come a, B, a (B: 1 of 3).
    k, v = baselines.ADD_K, VOCAB_SIZE
    after = {(BOUNDARY, a): (1, 2), (a, b): (2, 3), (b, BOUNDARY): (1, 3)}
    expected = -np.mean([np.log2((c + k) / (n + k * v)) for c, n in after.values()])
    assert baselines.bigram(train, test) == pytest.approx(expected)


def test_kneser_ney_is_a_distribution_and_learns_what_repeats():
    rng = np.random.default_rng(0)
    words = ["the film", "was good", "a bad plot", "great acting"]
    train = docs([" ".join(rng.choice(words, 6)) for _ in range(50)])
    for order in (2, 4):
        model = baselines.KneserNey(train, order)
        for context in ([ord("t"), ord("h"), ord("e")][-(order - 1) :], [7] * (order - 1)):
            assert model.distribution(np.array(context)).sum() == pytest.approx(1.0)
    model = baselines.KneserNey(train, 5)
    assert model.distribution(np.array([ord(c) for c in "acti"]))[ord("n")] > 0.9
    assert model.bits_per_character(train) < baselines.bigram(train, train)


def test_a_paired_difference_is_resolved_only_beyond_its_interval():
    cell, base = [2.10, 2.12, 2.11], [2.20, 2.21, 2.22]
    difference = noise.paired_difference(cell, base)
    d = [-0.10, -0.09, -0.11]
    sd = float(np.std(d, ddof=1))
    assert difference["mean"] == pytest.approx(-0.10)
    assert difference["half_width"] == pytest.approx(4.303 * sd / math.sqrt(3))
    assert noise.verdict(difference, lower_is_better=True) == "better"
    assert noise.verdict(difference, lower_is_better=False) == "worse"
    close = noise.paired_difference([2.20, 2.23, 2.19], base)  # Differences of either sign.
    assert noise.verdict(close, lower_is_better=True) == "within noise"
    assert noise.verdict(noise.paired_difference([1.0], [2.0]), True) == "within noise"


def test_matched_widths_give_each_cell_the_parameters_of_the_reference():
    budget = runs.FULL
    target = runs.parameters("lstm", budget.width, budget)
    for cell in ("rnn", "gru", "mingru"):
        width = runs.matched_width(cell, target, budget)
        assert abs(runs.parameters(cell, width, budget) - target) / target < 0.02, cell
    assert runs.matched_width("lstm", target, budget) == budget.width


@pytest.mark.slow  # Trains six small language models on the real text.
def test_quick_lm_study_writes_its_report_and_reads_finished_runs_back(tmp_path):
    out, workdirs = tmp_path / "lm", tmp_path / "workdirs"
    argv = ["--quick", "--out", str(out), "--workdirs", str(workdirs)]
    argv += ["--data-dir", str(DATA_DIR), "--cache-dir", str(tmp_path / "cache")]
    lm.main(argv)
    for name in ("report.md", "table.md", "baselines.md", "curves.png", "results.json"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    assert set(results["bpc"]) == set(lm.QUICK_CELLS)
    for cell, r in results["bpc"].items():
        assert len(r["runs"]) == 2 and r["mean"] == pytest.approx(np.mean(r["runs"])), cell
        assert (r["difference"] is None) == (cell == "lstm"), cell
    by_order = {r["order"]: r for r in results["baselines"] if r["counted_on"] != 0}
    assert 0 < by_order[2]["test_bpc"] < by_order[1]["test_bpc"] < 8.1  # Bigram, unigram.
    counted = sorted(r["counted_on"] for r in results["baselines"] if r["order"] == 3)
    assert counted[0] < counted[1]  # Kneser-Ney on the runs' characters, and on all of them.
    records = list((out / "runs").glob("*.json"))
    assert len(records) == 6
    record = json.loads(records[0].read_text())
    assert [s.split(" ")[0] for s in record["samples"]] == ["This", "The"]
    assert len(record["curve"]) == runs.QUICK.steps // runs.QUICK.eval_every
    # A second study reads the finished runs back: their workdirs are not needed.
    shutil.rmtree(workdirs)
    lm.main(argv)
    assert json.loads((out / "results.json").read_text())["bpc"] == results["bpc"]
    assert not workdirs.exists()
    with pytest.raises(SystemExit):
        lm.main(["--quick", "--cells", "lstm,nosuchcell"])


@pytest.mark.slow  # Compiles each cell's step twice.
def test_the_vmapped_seeds_timing_times_both_ways_for_every_cell(tmp_path):
    argv = ["--time-vmapped-seeds", "--quick", "--cells", "rnn,mingru", "--baseline", "rnn"]
    argv += ["--out", str(tmp_path)]
    lm.main([*argv, "--data-dir", str(DATA_DIR), "--cache-dir", str(tmp_path / "cache")])
    rows = (tmp_path / "vmapped_seeds" / "table.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["rnn", "mingru"]
    for row in rows[1:]:
        one_by_one, vmapped, ratio = (float(v) for v in row.split(",")[2:5])
        assert one_by_one > 0 and vmapped > 0 and ratio == pytest.approx(vmapped / one_by_one)
