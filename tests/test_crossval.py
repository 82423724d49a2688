"""K-fold cross-validation of a way of training (``cost_model.dataset.fold_splits``,
``autoschedule crossval``): every random pipeline held out once, none trained on in its own fold,
and runs compared pipeline by pipeline."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from shared_pipelines import fake_pipeline_data

from autoscheduler import cli
from cost_model.dataset import fold_splits

TINY = Path(__file__).resolve().parent.parent / "data" / "samples_small_tiny.jsonl.gz"


_fake = fake_pipeline_data


def test_every_random_pipeline_is_held_out_exactly_once():
    ps = [_fake(f"random_{i}", i) for i in range(300)] + [_fake("blur", 999)]
    splits = fold_splits(ps, 5, 0.1)
    assert len(splits) == 5
    held = [p.pipeline_hash for s in splits for p in s.test]
    assert sorted(held) == sorted(p.pipeline_hash for p in ps if p.name != "blur")   # each once, bundled never
    for s in splits:
        parts = [{p.pipeline_hash for p in part} for part in (s.train, s.val, s.test)]
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
        assert sum(map(len, parts)) == 300                   # the other folds are train or validation
        assert 30 <= len(s.test) <= 90 and 10 <= len(s.val) <= 45
        assert all(p.name != "blur" for part in (s.train, s.val) for p in part)
    # stable: the same pipelines, the same folds
    again = fold_splits(list(reversed(ps)), 5, 0.1)
    assert [sorted(p.pipeline_hash for p in s.test) for s in again] == \
        [sorted(p.pipeline_hash for p in s.test) for s in splits]


def test_a_train_fraction_subsamples_training_only_and_nests():
    ps = [_fake(f"random_{i}", i) for i in range(400)]
    full, half, quarter = (fold_splits(ps, 4, 0.1, train_fraction=f) for f in (1.0, 0.5, 0.25))
    for a, b, c in zip(full, half, quarter):
        ta, tb, tc = ({p.pipeline_hash for p in s.train} for s in (a, b, c))
        assert tc <= tb <= ta                                 # a smaller share is a subset of a larger one
        assert 0.35 < len(tb) / len(ta) < 0.65 and 0.12 < len(tc) / len(ta) < 0.38
        for x in (b, c):                                      # held-out and validation sets unchanged
            assert [p.pipeline_hash for p in x.test] == [p.pipeline_hash for p in a.test]
            assert [p.pipeline_hash for p in x.val] == [p.pipeline_hash for p in a.val]
    with pytest.raises(ValueError, match="train_fraction"):
        fold_splits(ps, 4, train_fraction=0.0)


def test_fold_splits_reject_what_cannot_be_split():
    ps = [_fake(f"random_{i}", i) for i in range(3)]
    with pytest.raises(ValueError, match="2 or more folds"):
        fold_splits(ps, 1)
    with pytest.raises(ValueError, match="cannot fill 5 folds"):
        fold_splits(ps, 5)


def test_cli_crossval_writes_per_pipeline_results_and_compares_runs(tmp_path, capsys):
    cache = str(tmp_path / "cache")
    first = tmp_path / "a.json"
    args = ["crossval", "--db", str(TINY), "--folds", "3", "--epochs", "2", "--cache-dir", cache, "--quiet",
            "--bootstrap", "200"]
    assert cli.main(args + ["--out", str(first), "--jobs", "2"]) == 0
    out = json.loads(first.read_text())
    names = sorted(r["name"] for r in out["pipelines"])
    assert len(names) == len(set(names)) == out["summary"]["n_pipelines"] >= 8   # every pipeline once
    assert out["folds"] == 3 and len(out["fold_detail"]) == 3
    assert sum(f["test_pipelines"] for f in out["fold_detail"]) == len(names)
    assert out["command"].startswith("autoschedule crossval") and "--folds 3" in out["command"]
    assert 0.0 <= out["summary"]["pairwise_20"] <= 1.0
    lo, hi = out["intervals"]["pairwise_20"]
    assert lo <= out["summary"]["pairwise_20"] <= hi
    capsys.readouterr()
    # the same run again (same seeds, one process): the same networks, a difference of exactly zero
    second = tmp_path / "b.json.gz"                          # compressed when asked
    assert cli.main(args + ["--out", str(second), "--compare", str(first)]) == 0
    text = capsys.readouterr().out
    assert f"this run minus {first}, paired over {len(names)} pipelines (95% interval): >20% +0.000 " \
        "(+0.000 to +0.000), top-1 regret +0.0% (+0.0% to +0.0%)" in text
    with gzip.open(second, "rt") as fh:
        assert json.load(fh)["pipelines"] == out["pipelines"]
    # a file that is not a crossval result: one line naming it
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert cli.main(args + ["--out", str(tmp_path / "c.json"), "--compare", str(bad)]) == 2
    assert f"--compare {bad}: not a crossval --out file" in capsys.readouterr().err
