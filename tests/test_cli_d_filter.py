"""`seqgan-env sample --d-filter` and `benchmark gan` through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqgan_env.cli import main

TINY = ["--generator.hidden-size", "16", "--generator.intermediate-size", "32", "--generator.num-layers", "1"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    rc = main(["train", "--no-progress", "--updates", "2", "--pretrain-steps", "2", "--set", f"out_dir={out}",
               "--set", "schedule.eval_samples=10", "--set", "schedule.d_pretrain_steps=1",
               "--set", "reinforce.batch_size=8", "--set", "d_updates.batch_size=8", *TINY])
    assert rc == 0
    return next(out.iterdir())


@pytest.mark.parametrize("method", ["sir", "rejection"])
def test_sample_d_filter_prints_n_samples_reproducibly(run, capsys, method):
    capsys.readouterr()
    argv = ["sample", str(run), "-n", "9", "--seed", "4", "--d-filter", method]
    assert main(argv) == 0
    first = capsys.readouterr()
    assert len(first.out.splitlines()) == 9 and first.err == ""
    assert main(argv) == 0
    assert capsys.readouterr().out == first.out
    assert main(["sample", str(run), "-n", "9", "--seed", "4", "--d-filter", method, "--d-filter-beta", "0"]) == 0


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--d-filter-oversample", "0"], "oversample=0"),
        (["--d-filter-beta", "-1"], "beta=-1.0"),
    ],
)
def test_sample_d_filter_bad_values_are_named(run, capsys, argv, needle):
    assert main(["sample", str(run), "--d-filter", "sir", *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["benchmark", "gan", "--arms", "d_filter"], "add mle"),
        (["benchmark", "gan", "--rows", "mle"], "--rows and --budget belong"),
        (["benchmark", "gan", "--mle-recipe", "seqgan"], "--mle-recipe belongs to `benchmark oracle`"),
        (["benchmark", "oracle", "--arms", "mle"], "belong to `benchmark gan`"),
        (["benchmark", "gan", "--data", "oracle", "--arms", "mle,d_filter"], "no NLL-test on the oracle"),
        (["benchmark", "gan", "--variant", "rloo"], "NAME:KEY=VALUE"),
        (["benchmark", "oracle", "--variant", "a:b=1"], "belong to `benchmark gan`"),
        (["benchmark", "oracle", "--score-on", "valid"], "belong to `benchmark gan`"),
    ],
)
def test_benchmark_gan_bad_options_are_named(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_sample_d_tilt_prints_n_samples_reproducibly(run, capsys):
    """`sample --d-tilt ALPHA`: the tilted generator's exact samples, reproducible; ALPHA 0 is plain sampling."""
    capsys.readouterr()
    argv = ["sample", str(run), "-n", "7", "--seed", "3", "--d-tilt", "0.8"]
    assert main(argv) == 0
    first = capsys.readouterr()
    assert len(first.out.splitlines()) == 7 and first.err == ""
    assert main(argv) == 0
    assert capsys.readouterr().out == first.out
    assert main(["sample", str(run), "-n", "7", "--seed", "3", "--d-tilt", "0"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 7


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--d-tilt", "nan"], "--d-tilt nan is invalid"),
        (["--d-tilt", "1", "--d-filter", "sir"], "pass one of them"),
        (["--d-tilt", "1", "--temperature", "0.7"], "drop --temperature"),
    ],
)
def test_sample_d_tilt_bad_values_are_named(run, capsys, argv, needle):
    assert main(["sample", str(run), *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
