"""`scaling coordcheck`: under μP every layer's activations keep their size across widths; under SP
the logits grow (issue 11, acceptance 1: widths 32 to 256, 3 steps, on CPU)."""

from __future__ import annotations

import pandas as pd
import pytest

from scaling.analysis.coordcheck import slope_table, slopes
from scaling.cli import main
from scaling.commands.coordcheck import measure

WIDTHS = [32, 64, 128, 256]
SMALL_GPT = ["model=gpt", "model.depth=2", "model.head_dim=16", "data.seq_len=32", "optim.batch_size=4",
             "trainer.threads=1"]
SMALL_CNN = ["model=cnn", "data=digits", "model.depth=3", "model.dropout=0", "optim.batch_size=16", "optim.lr=0.03",
             "trainer.threads=1"]


def growth(frame: pd.DataFrame, layer: str, step: int) -> float:
    """RMS at the largest width over RMS at the smallest, for one layer at one step."""
    rms = frame[(frame["layer"] == layer) & (frame["step"] == step)].set_index("width")["rms"]
    return float(rms[rms.index.max()] / rms[rms.index.min()])


def test_gpt_mup_is_flat_and_sp_logits_grow() -> None:
    untied = [*SMALL_GPT, "model.tie_embeddings=false", "model.readout_zero_init=true"]
    mup = slopes(measure([*untied, "model.parametrization=mup"], WIDTHS, 3))
    assert len(mup) == 3 * 22 and mup["layer"].iloc[-1] == "lm_head"  # every layer of 2 blocks, each step
    assert (mup["spread"] < 2).all(), mup[mup["spread"] >= 2]
    sp = measure([*SMALL_GPT, "model.tie_embeddings=false"], WIDTHS, 3)
    assert all(growth(sp, "lm_head", step) > 2 for step in (1, 2, 3))


def test_gpt_mup_with_a_tied_head_only_the_initial_logits_shrink() -> None:
    """A readout that does not start at zero (a tied one cannot): μP's logits at init shrink like
    width^-1/2 (scaling.models.mup), and never grow."""
    frame = measure([*SMALL_GPT, "model.parametrization=mup"], WIDTHS, 3)
    table = slopes(frame)
    others = table[table["layer"] != "lm_head"]
    assert (others["spread"] < 2).all(), others[others["spread"] >= 2]
    logits = table[table["layer"] == "lm_head"]
    assert (logits["slope"] < 0).all() and logits["slope"].iloc[0] == pytest.approx(-0.5, abs=0.1)
    assert growth(measure(SMALL_GPT, WIDTHS, 1), "lm_head", 1) > 2  # sp's grow


def test_cnn_mup_is_flat_and_sp_logits_grow() -> None:
    widths = [4, 8, 16, 32]  # the classifier is 64 x width wide: 2048 at width 32
    mup = slopes(measure([*SMALL_CNN, "model.parametrization=mup", "model.readout_zero_init=true"], widths, 3))
    assert (mup["spread"] < 2).all(), mup[mup["spread"] >= 2]
    sp = measure(SMALL_CNN, widths, 3)
    assert growth(sp, "head", 2) > 2 and growth(sp, "head", 3) > 2


def test_cli_prints_slopes_and_writes_the_figure(tmp_path, capsys) -> None:
    out = tmp_path / "cc"
    assert main(["coordcheck", *SMALL_GPT, "model.depth=1", "model.parametrization=mup", "--widths", "32,64",
                 "--steps=2", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "model=gpt model.parametrization=mup" in printed and "lm_head" in printed and "step 2" in printed
    assert (out / "coordcheck_gpt_mup.png").stat().st_size > 10_000
    frame = pd.read_csv(out / "coordcheck_gpt_mup.csv")
    assert set(frame["width"]) == {32, 64} and set(frame["step"]) == {1, 2}
    table = slope_table(slopes(frame))
    assert list(table.columns) == ["step 1", "step 2", "max spread"]


@pytest.mark.parametrize("args, words", [
    (["--widths", "32"], ["--widths 32 gives 1 width", "at least 2"]),
    (["--widths", "32,x"], ["--widths 'x' is not a whole number"]),
    (["--steps", "0"], ["--steps 0 must be positive"]),
    (["--steps"], ["--steps needs a value"]),
    (["--width", "32,64"], ["unknown option --width"]),
    (["model.parametrization=mup", "model=torchvision", "data=digits"], ["is not a parametrization of model=torchvision"]),
])
def test_bad_input_is_one_line(args, words, capsys) -> None:
    assert main(["coordcheck", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    for word in words:
        assert word in err
