"""The command line: listing, running named schedules, and one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys

import halide_pipelines
from autoscheduler.cli import main


def test_list_names_every_bundled_pipeline(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in halide_pipelines.names():
        assert name in out


def test_run_root_prints_loop_nest_and_time(capsys, tmp_path):
    emit = tmp_path / "sched.py"
    assert main(["run", "conv_layer", "--small", "--schedule", "root", "--print-loop-nest",
                 "--repeats", "2", "--emit", str(emit)]) == 0
    out = capsys.readouterr().out
    assert "produce conv" in out and "produce relu" in out
    assert "run min" in out
    assert "compute_root()" in emit.read_text()


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoscheduler.cli", *args],
                          capture_output=True, text=True, timeout=120)


def test_unknown_pipeline_is_one_line_exit_2():
    r = _run("run", "no_such_pipeline")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "unknown pipeline 'no_such_pipeline'" in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_target_is_one_line_exit_2():
    r = _run("run", "index_sum", "--target", "arm-65-nowhere")
    assert r.returncode == 2 and "bad target string" in r.stderr and "Traceback" not in r.stderr


def test_bad_size_is_one_line_exit_2():
    r = _run("run", "conv_layer", "--size", "widht=3")
    assert r.returncode == 2 and "unknown size" in r.stderr and "Traceback" not in r.stderr


def test_missing_estimate_is_one_line_exit_2(tmp_path):
    """A user's pipeline without estimates: the error names what is missing."""
    script = tmp_path / "user.py"
    script.write_text(
        "import halide as hl\n"
        "from autoscheduler import baselines\n"
        "from autoscheduler.cli import main\n"
        "from autoscheduler.errors import ToolkitError\n"
        "if __name__ == '__main__':\n"
        "    x = hl.Var('x'); f = hl.Func('f'); f[x] = x\n"
        "    try:\n"
        "        baselines.search(hl.Pipeline(f), 'Adams2019', {'parallelism': 2}, 'host')\n"
        "    except ToolkitError as e:\n"
        "        print(e)\n")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert "estimate" in r.stdout.lower() and r.stdout.strip().count("\n") == 0


def test_run_from_file_benchmark_top_measures_a_users_pipeline(capsys, tmp_path):
    """--from-file with --benchmark-top: the user's pipeline is measured (random inputs at its
    estimates), every candidate's time printed, and the fastest emitted."""
    user = tmp_path / "my_pipeline.py"
    user.write_text(
        "import halide as hl\n"
        "def pipeline():\n"
        "    x, y = hl.Var('x'), hl.Var('y')\n"
        "    inp = hl.ImageParam(hl.Float(32), 2, 'img')\n"
        "    bx = hl.Func('bx'); bx[x, y] = inp[x, y] + inp[x + 1, y] + inp[x + 2, y]\n"
        "    by = hl.Func('by'); by[x, y] = bx[x, y] + bx[x, y + 1] + bx[x, y + 2]\n"
        "    by.set_estimates([(0, 96), (0, 64)])\n"
        "    inp.set_estimates([(0, 98), (0, 66)])\n"
        "    return by\n")
    emit = tmp_path / "sched.py"
    assert main(["run", "--from-file", str(user), "--benchmark-top", "2", "--beam-size", "4",
                 "--passes", "1", "--emit", str(emit)]) == 0
    out = capsys.readouterr().out
    assert out.count("measured ") >= 2 and "keeping candidate" in out
    assert "pipeline.get_func" in emit.read_text()
