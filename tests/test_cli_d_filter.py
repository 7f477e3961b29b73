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
        (["benchmark", "gan", "--ratio-d", "stepz=3"], "KEY one of"),
        (["benchmark", "gan", "--ratio-d", "steps=abc"], "not a number"),
        (["benchmark", "gan", "--ratio-d", "dropout=1.5"], "--ratio-d: dropout=1.5"),
        (["benchmark", "gan", "--mle-patience", "-1"], "mle_patience=-1"),
        (["benchmark", "gan", "--data", "oracle", "--arms", "mle,tilted"], "not run on the oracle"),
        (["benchmark", "oracle", "--ratio-d", "steps=3"], "belong to `benchmark gan`"),
        (["benchmark", "oracle", "--mle-max-steps", "3"], "belong to `benchmark gan`"),
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


def test_fit_ratio_then_sample_and_eval_with_the_tilt(run, tmp_path, capsys):
    """fit-ratio saves a density-ratio D and its alpha under RUN/ratio_d; sample/eval --d-tilt auto use them, and
    eval reports the tilted model's exact NLL beside the generator's (equal at alpha 0)."""
    import json
    import shutil

    own = tmp_path / "run"
    shutil.copytree(run, own)
    capsys.readouterr()
    assert main(["sample", str(own), "-n", "3", "--d-tilt", "auto"]) == 2
    assert "fit-ratio" in capsys.readouterr().err
    recipe = "steps=4,eval_every=2,batch_size=8,pool_size=32,gain_samples=8,hidden_size=8,num_layers=1"
    assert main(["fit-ratio", str(own), "--ratio-d", recipe]) == 0
    out = capsys.readouterr().out
    assert "alpha" in out and (own / "ratio_d" / "discriminator.safetensors").is_file()
    meta = json.loads((own / "ratio_d" / "ratio_d.json").read_text())
    assert meta["steps"] == 4 and meta["config"]["steps"] == 4 and meta["alpha"] in meta["config"]["alphas"]
    assert main(["sample", str(own), "-n", "5", "--seed", "1", "--d-tilt", "auto"]) == 0
    tilted = capsys.readouterr().out
    assert len(tilted.splitlines()) == 5
    assert main(["sample", str(own), "-n", "5", "--seed", "1"]) == 0  # with ratio_d the tilted model is the default
    assert capsys.readouterr().out == tilted
    assert main(["sample", str(run), "-n", "5", "--seed", "1"]) == 0  # without it: the generator
    plain = capsys.readouterr().out
    assert main(["sample", str(own), "-n", "5", "--seed", "1", "--temperature", "1.0001"]) == 0  # a temperature: off
    assert len(capsys.readouterr().out.splitlines()) == 5 and len(plain.splitlines()) == 5
    assert main(["eval", str(own), "-n", "20", "--d-tilt", "0"]) == 0
    report = json.loads((own / "eval.json").read_text())
    assert report["tilted_nll"] == pytest.approx(report["generator_nll"], abs=1e-5)
    assert report["d_tilt_discriminator"].endswith("ratio_d") and "odd positions" in report["d_tilt_rows"]
    assert main(["eval", str(own), "-n", "20", "--d-tilt", "auto"]) == 0
    assert json.loads((own / "eval.json").read_text())["d_tilt_alpha"] == meta["alpha"]


@pytest.mark.parametrize("argv,needle", [(["--d-tilt", "inf"], "--d-tilt inf is invalid"),
                                         (["--d-tilt", "x"], "--d-tilt x is invalid"),
                                         (["fit-ratio", "--ratio-d", "steps=0"], "steps=0")])
def test_tilt_bad_values_are_named(run, capsys, argv, needle):
    full = ["fit-ratio", str(run), *argv[1:]] if argv[0] == "fit-ratio" else ["sample", str(run), *argv]
    assert main(full) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_tilt_refuses_a_large_vocabulary(run, capsys, monkeypatch):
    from seqgan_env import cli

    monkeypatch.setattr(cli, "TILT_MAX_VOCAB", 4)
    assert main(["fit-ratio", str(run)]) == 2
    err = capsys.readouterr().err
    assert "scores all" in err and "--d-filter" in err and "Traceback" not in err
