"""Learning-rate transfer: best rates per width, the parabola's vertex, the power law with its interval,
the rule and its fit file (`scaling fit --law lr --save`), the figure, and a reduced lr_transfer run."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from scaling.analysis.hygiene import AnalysisError
from scaling.analysis.lr_transfer import (best_lrs, figure, fit_lr, read_rules, save_fit,
                                          varies_lr_across_widths)
from scaling.cli import main

LRS = [0.002, 0.004, 0.008, 0.016, 0.032]
GRID = [0.0005 * 2 ** i for i in range(7)]


def synthetic(optimum: dict[tuple[str, int], float], lrs: list[float] = LRS, noise: float = 0.0,
              seed: int = 0) -> pd.DataFrame:
    """Loss = 2 + (log2 lr - log2 optimum)^2 / 10 (+ Gaussian noise) on the grid, per (parametrization, width)."""
    rng = np.random.default_rng(seed)
    rows = [{"parametrization": p, "width": w, "lr": lr, "status": "completed",
             "loss": 2 + (np.log2(lr / best)) ** 2 / 10 + noise * rng.standard_normal()}
            for (p, w), best in optimum.items() for lr in lrs]
    return pd.DataFrame(rows)


def transfer_table(noise: float = 0.003) -> pd.DataFrame:
    """sp's optimum falls as 1/width (0.016 at width 32), mup's stays at 0.004: widths 32 to 256."""
    optimum = {("sp", w): 0.016 * 32 / w for w in (32, 64, 128, 256)}
    optimum.update({("mup", w): 0.004 for w in (32, 64, 128, 256)})
    return synthetic(optimum, GRID, noise)


def test_best_rates_vertex_and_exponents() -> None:
    frame = synthetic({("mup", 32): 0.008, ("mup", 64): 0.008, ("mup", 128): 0.008,
                       ("sp", 32): 0.016, ("sp", 64): 0.008 * 2 ** 0.3, ("sp", 128): 0.004})
    best = best_lrs(frame).set_index(["parametrization", "width"])
    assert best.loc[("sp", 64), "best_lr"] == 0.008
    assert best.loc[("sp", 64), "lr_opt"] == pytest.approx(0.008 * 2 ** 0.3)  # a parabola is exact here
    assert (best["edge"] == "").all()
    fit = fit_lr(frame, bootstrap=0)
    assert fit.laws["mup"]["exponent"] == pytest.approx(0.0, abs=1e-9)
    assert fit.laws["sp"]["exponent"] == pytest.approx(-1.0, abs=1e-9)
    assert "width 32: best lr 0.016" in fit.summary() and "best values span 2.0 factors of 2" in fit.summary()
    assert len(figure(frame).axes) == 2


def test_an_optimum_at_the_grid_edge_is_named() -> None:
    best = best_lrs(synthetic({("sp", 32): 0.1, ("sp", 64): 0.001}))
    assert list(best["edge"]) == ["high", "low"] and list(best["lr_opt"]) == [0.032, 0.002]


def test_fit_lr_recovers_the_exponents_with_intervals_and_a_rule() -> None:
    fit = fit_lr(transfer_table(), bootstrap=300)
    sp, mup = fit.laws["sp"], fit.laws["mup"]
    assert sp["exponent"] == pytest.approx(-1.0, abs=0.1) and mup["exponent"] == pytest.approx(0.0, abs=0.1)
    for law in (sp, mup):
        low, high = law["interval"]
        assert low < law["exponent"] < high and high - low < 0.5
    assert sp["reference"] == 64 and sp["rule"].startswith("0.00") and "* (width / 64) ** -" in sp["rule"]
    lr_at_128 = eval(sp["rule"], {}, {"width": 128})  # the rule as sweep.rules evaluates it
    assert lr_at_128 == pytest.approx(0.016 * 32 / 128, rel=0.15)
    text = fit.summary()
    assert 'rule  optim.lr: "' in text and "mup:" in text and "width 256: best lr 0.002" in text


def test_noise_free_parabolas_leave_no_interval_and_say_why() -> None:
    fit = fit_lr(synthetic({("sp", 32): 0.004, ("sp", 64): 0.004}, [0.002, 0.004, 0.008]), bootstrap=50)
    assert all(math.isnan(v) for v in fit.laws["sp"]["interval"])
    assert "no residuals" in fit.summary()


def test_a_diverged_run_is_a_tried_grid_point_not_a_missing_one() -> None:
    frame = transfer_table()
    top = frame["lr"] == GRID[-1]
    frame.loc[top, "status"], frame.loc[top, "loss"] = "diverged", np.nan
    fit = fit_lr(frame, bootstrap=0)  # sp width 32's best (0.016) would be the top edge without the 0.032 runs
    assert fit.table.set_index(["parametrization", "width"]).loc[("sp", 32), "rates"] == 7
    assert not fit.notes


def test_seeds_are_averaged_and_unequal_counts_are_noted() -> None:
    frame = transfer_table()
    again = frame[frame["lr"] <= 0.004].assign(seed=1, loss=lambda t: t["loss"] + 0.01)
    fit = fit_lr(pd.concat([frame.assign(seed=0), again]), bootstrap=0)
    assert "unequal numbers of runs (seeds), 1 to 2" in fit.summary() and "--where 'seed == 0'" in fit.notes[0]


@pytest.mark.parametrize("frame, words", [
    (synthetic({("sp", 32): 0.004, ("sp", 64): 0.004}, [0.002, 0.004]),
     "sp width 32 has 2 value(s) of optim.lr; --law lr needs at least 3"),
    (synthetic({("mup", 32): 0.004, ("mup", 64): 0.1}, LRS),
     "mup width 64: the best optim.lr 0.032 is the highest of its grid, so the optimum may lie beyond it; "
     "extend the grid above 0.032 there"),
    (synthetic({("sp", 32): 0.0001, ("sp", 64): 0.004}, LRS), "is the lowest of its grid"),
    (synthetic({("sp", 32): 0.004}, LRS), "sp has one width (32); a power law"),
    (synthetic({("sp", 32): 0.004, ("sp", 64): 0.004}, LRS).assign(depth=[1, 2] * 5), "differ in depth too"),
])
def test_bad_sweeps_are_refused_in_one_line(frame: pd.DataFrame, words: str) -> None:
    with pytest.raises(AnalysisError, match="^[^\n]*$") as error:
        fit_lr(frame, bootstrap=0)
    assert words in str(error.value)


def test_cli_prints_the_rule_and_saves_the_fit_file(tmp_path, capsys) -> None:
    table = tmp_path / "lr.csv"
    transfer_table().to_csv(table, index=False)
    saved = tmp_path / "fits" / "lr_fit.json"
    assert main(["fit", str(table), "--law", "lr", "--bootstrap", "200", "--save", str(saved)]) == 0
    out = capsys.readouterr().out
    assert 'rule  optim.lr: "' in out and f"saved {saved} (use it with sweep.rules_from={saved})" in out
    content = json.loads(saved.read_text())
    assert content["format"] == "scaling.lr_fit/1" and content["against"] == "width"
    assert content["laws"]["sp"]["exponent"] == pytest.approx(-1.0, abs=0.1)
    assert len(content["points"]) == 8 and content["source"] == str(table)
    assert read_rules(saved, "mup") == {"optim.lr": content["laws"]["mup"]["rule"]}
    assert main(["fit", str(table), "--law", "lr", "--json", "--against", "N_nonembed"]) == 2  # no such column
    assert "needs column(s) N_nonembed" in capsys.readouterr().err
    assert main(["fit", str(table), "--law", "lr", "--json", "--bootstrap", "20"]) == 0
    assert json.loads(capsys.readouterr().out)["rules"]["sp"]["optim.lr"] == content["rules"]["sp"]["optim.lr"]


@pytest.mark.parametrize("argv, words", [
    (["--law", "compute", "--save", "x.json"], "--save goes with --law lr"),
    (["--law", "lr", "--holdout", "2"], "--holdout does not apply to --law lr"),
    (["--law", "curve", "--knob", "lr"], "--knob does not apply to --law curve"),
])
def test_lr_options_and_other_laws_do_not_mix(tmp_path, capsys, argv: list[str], words: str) -> None:
    table = tmp_path / "lr.csv"
    transfer_table().to_csv(table, index=False)
    assert main(["fit", str(table), *argv]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


def test_batch_size_fit_gives_an_integer_rule() -> None:
    rows = [{"width": w, "batch_size": b, "C": c,
             "loss": 2 + (math.log2(b) - math.log2(8 * (c / 1e12) ** 0.5)) ** 2 / 10}
            for w, c in ((32, 1e12), (64, 4e12), (128, 1.6e13)) for b in (2, 4, 8, 16, 32, 64, 128)]
    fit = fit_lr(pd.DataFrame(rows), knob="batch_size", against="C", bootstrap=0)
    assert fit.laws["sp"]["exponent"] == pytest.approx(0.5, abs=1e-6)
    rule = fit.rules()["sp"]["optim.batch_size"]
    assert rule.startswith("max(1, int(round(") and "(C / 1e13)" in rule
    assert eval(rule, {}, {"C": 1.6e13}) == 32


def test_read_rules_refuses_bad_files_in_one_line(tmp_path) -> None:
    fit = fit_lr(transfer_table(), bootstrap=0)
    good = save_fit(fit, tmp_path / "fit.json")
    assert set(read_rules(good, "sp")) == {"optim.lr"}
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"law": "chinchilla", "params": {}}))
    for path, words in ((tmp_path / "missing.json", "does not exist; write it with scaling fit SWEEP --law lr"),
                        (bad, "is not a readable JSON fit file"), (other, "is not a fit file of scaling fit --law lr")):
        with pytest.raises(ValueError, match="^[^\n]*$") as error:
            read_rules(path, "sp")
        assert words in str(error.value)
    with pytest.raises(ValueError, match="has rules for mup, sp, not for model.parametrization=umup"):
        read_rules(good, "umup")


def test_an_lr_sweep_is_recognised_for_the_report() -> None:
    assert varies_lr_across_widths(transfer_table())
    assert not varies_lr_across_widths(synthetic({("sp", 32): 0.004}, LRS))
    assert not varies_lr_across_widths(pd.DataFrame({"width": [32], "loss": [2.0]}))


def test_the_report_draws_loss_against_lr_per_width_sp_and_mup_side_by_side(tmp_path) -> None:
    from scaling.analysis.analyse import analyse
    from scaling.analysis.report import write_report

    runs = transfer_table().assign(N=lambda t: 12 * t["width"] ** 2 * 2, D=1e6)
    runs["C"] = 6 * runs["N"] * runs["D"]
    written = write_report(analyse(runs, law="compute"), tmp_path, "lr sweep")
    assert {"lr_transfer.png", "lr_transfer.svg"} <= {p.name for p in written["figures"]}
    page = written["html"].read_text()
    assert 'data-figure="lr_transfer"' in page and "Learning-rate transfer" in page
    plotly, _ = json.JSONDecoder().raw_decode(page.split('"fig-lr_transfer",')[1].strip())  # the traces
    assert {trace.get("name") for trace in plotly} >= {"width 32", "width 256"}
    assert sorted({trace["xaxis"] for trace in plotly}) == ["x", "x2"]  # sp and mup panels


def test_fit_law_lr_needs_no_training_stack(tmp_path) -> None:
    from tests.analysis.test_analysis_no_torch import run_blocked

    table = tmp_path / "lr.csv"
    transfer_table().to_csv(table, index=False)
    code = "import sys; from scaling.cli import main; sys.exit(main(['fit', sys.argv[1], '--law', 'lr']))"
    done = run_blocked(code, str(table), cwd=tmp_path)
    assert done.returncode == 0 and 'rule  optim.lr: "' in done.stdout


# experiments/lr_transfer reduced to about 2 minutes on 2 busy cores: widths 32 and 128, 6 rates, 100 steps of 8
# sequences of 32 tokens. The measured reduced run (widths 32/64/128, 200 steps) is in the experiment's header.
REDUCED = ["experiment=lr_transfer", "model.width=32,128", "optim.lr=0.00025,0.0005,0.001,0.002,0.004,0.008",
           "data.seq_len=32", "optim.batch_size=8", "budget.tokens=25600", "data.val_tokens=4096",
           "trainer.val_every=100", "launcher.parallel=2", "trainer.progress=false"]


@pytest.mark.slow
def test_reduced_lr_transfer_sp_drifts_mup_stays_and_a_ladder_follows_the_rule(tmp_path, capsys) -> None:
    from scaling.plan import plan_sweep

    assert main(["sweep", *REDUCED, f"run.root={tmp_path}"]) == 0
    saved = tmp_path / "lr_fit.json"
    assert main(["fit", str(tmp_path / "lr_transfer"), "--law", "lr", "--save", str(saved)]) == 0
    print(capsys.readouterr().out)  # shown with -s: the measured table
    fit = json.loads(saved.read_text())
    sp, mup = fit["laws"]["sp"], fit["laws"]["mup"]
    assert sp["exponent"] < -0.5 and sp["interval"][1] < 0  # sp's best rate falls with width
    assert abs(mup["exponent"]) < 0.3 and mup["exponent"] > sp["exponent"] + 0.4
    best = [p["best_lr"] for p in fit["points"] if p["parametrization"] == "mup"]
    assert max(best) / min(best) <= 2  # within one grid step
    plan = plan_sweep(["model=gpt", "model.width=32,64,128", "model.head_dim=16", "data.seq_len=32",
                       f"run.root={tmp_path}", f"sweep.rules_from={saved}"])
    rates = {spec.cfg.model.width: spec.cfg.optim.lr for spec in plan.runs}
    assert rates[32] > rates[64] > rates[128]
    assert rates[128] == pytest.approx(eval(sp["rule"], {}, {"width": 128}))
