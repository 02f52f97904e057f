"""`scaling coordcheck [--widths 32,64,128] [--steps 3] [-o DIR] [overrides]`: μP's self-test.

Trains the configured model (any family and model.parametrization) for a few steps at each
width, on the first batches of its data, at the optimizer's constant learning rate (no warmup),
and records the RMS of every layer's output at each step. It draws RMS against width, one
log-log panel per step (DIR/coordcheck_<family>_<parametrization>.png, the numbers in .csv)
and prints each layer's slope of log RMS against log width. Under mup the curves are flat; under
sp the output logits grow with width (Yang et al. 2022, "Tensor Programs V", Section 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from scaling.commands.base import Command, writable_folder
from scaling.commands.errors import UsageError, guarded
from scaling.commands.hydra_front import HydraArgs, hydra_front, print_config

if TYPE_CHECKING:
    import pandas as pd

FLAGS_HELP = """

coordcheck's own options:
  --widths 32,64,128,256   model widths to compare (at least 2; default 32,64,128,256)
  --steps 3                training steps recorded per width (step 1 is at init)
  -o, --out DIR            where the figure and the numbers go (default coordcheck/)"""


@dataclass
class CoordArgs:
    """The Hydra overrides and coordcheck's own flags."""

    hydra: HydraArgs
    widths: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    steps: int = 3
    out: Path = Path("coordcheck")


def parse(argv: Sequence[str]) -> CoordArgs:
    """Take --widths, --steps and -o out of argv; the rest is a Hydra-style command line."""
    rest, values = _take_flags(list(argv), {"--widths": "widths", "--steps": "steps", "-o": "out", "--out": "out"})
    args = CoordArgs(hydra_front("coordcheck", help_extra=FLAGS_HELP)(rest))
    if "widths" in values:
        args.widths = _widths(values["widths"])
    if "steps" in values:
        args.steps = _positive_int(values["steps"], "--steps")
    if "out" in values:
        args.out = Path(values["out"])
    return args


def _take_flags(argv: list[str], names: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """(argv without the flags in `names`, {field: value}); `--flag value` and `--flag=value`."""
    rest, values = [], {}
    while argv:
        arg = argv.pop(0)
        flag, _, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if flag not in names:
            rest.append(arg)
            continue
        if not inline and not argv:
            raise UsageError(f"{flag} needs a value; see `scaling coordcheck --help`")
        values[names[flag]] = inline or argv.pop(0)
    return rest, values


def _widths(text: str) -> list[int]:
    widths = sorted({_positive_int(part, "--widths") for part in text.split(",") if part.strip()})
    if len(widths) < 2:
        raise UsageError(f"--widths {text} gives {len(widths)} width; give at least 2, e.g. --widths 32,64,128")
    return widths


def _positive_int(text: str, flag: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{flag} {text!r} is not a whole number; e.g. {flag} 3") from None
    if value <= 0:
        raise UsageError(f"{flag} {value} must be positive")
    return value


@guarded
def run(args: CoordArgs) -> int:
    """Measure, print the slopes, write the figure and the numbers."""
    if args.hydra.cfg:
        return print_config(args.hydra)
    writable_folder(args.out, "-o")
    frame = measure(args.hydra.overrides, args.widths, args.steps)
    from scaling.analysis.coordcheck import slope_table, slopes

    table = slopes(frame)
    family, parametrization = frame.attrs["family"], frame.attrs["parametrization"]
    print(f"coordinate check: model={family} model.parametrization={parametrization}, widths "
          f"{', '.join(map(str, args.widths))}, {args.steps} steps; slope of log RMS against log width "
          f"(0: flat) and the largest RMS ratio across widths")
    print(slope_table(table).to_string(float_format=lambda v: f"{v:.2f}"))
    for path in write(frame, args.out, f"coordcheck_{family}_{parametrization}"):
        print(f"wrote {path}")
    return 0


def measure(overrides: Sequence[str], widths: Sequence[int], steps: int) -> pd.DataFrame:
    """The coordinate check's frame (width, layer, step, rms) for a config at each width;
    `attrs` name the family and parametrization."""
    import pandas as pd

    from scaling.config import load_config

    configs = [load_config([*overrides, f"model.width={width}"]) for width in widths]  # refused before training
    batches = first_batches(configs[0], steps)
    rows = []
    for width, cfg in zip(widths, configs):
        rows += [{"width": width, **row} for row in width_coordinates(cfg, batches)]
    frame = pd.DataFrame(rows, columns=["width", "layer", "step", "rms"])
    frame.attrs.update(family=configs[0].model.family, parametrization=configs[0].model.parametrization)
    return frame


def first_batches(cfg: Any, steps: int) -> list[tuple[Any, Any]]:
    """The first `steps` global batches of the config's training order (the same for every width)."""
    from torch.utils.data import DataLoader

    from scaling.data import build_data

    size = cfg.optim.batch_size
    dataset = build_data(cfg.data).train_dataset(steps * size)
    return list(DataLoader(dataset, batch_size=size, shuffle=False))[:steps]


def width_coordinates(cfg: Any, batches: list[tuple[Any, Any]]) -> list[dict[str, Any]]:
    """Build the config's model (seeded), its training optimizer at constant lr, and record."""
    import torch

    from scaling.config import trainer_wants_gpu
    from scaling.data import data_info
    from scaling.models import build_model
    from scaling.models.mup import coordinates
    from scaling.plan import plan_run
    from scaling.train import ScalingModule

    torch.set_num_threads(cfg.trainer.threads)
    device = torch.device("cuda" if trainer_wants_gpu(cfg.trainer) and torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, data_info(cfg.data)).to(device)
    optimizer = ScalingModule(model, plan_run(cfg)).configure_optimizers()["optimizer"]  # as training builds it
    return coordinates(model, optimizer, [(x.to(device), y.to(device)) for x, y in batches])


def write(frame: pd.DataFrame, folder: Path, name: str) -> list[Path]:
    """NAME.png (the figure) and NAME.csv (the numbers) in `folder`."""
    from scaling.analysis.coordcheck import figure
    from scaling.analysis.figures import save_figures

    title = f"coordinate check: model={frame.attrs['family']} {frame.attrs['parametrization']}"
    paths = save_figures({name: figure(frame, title)}, folder, formats=("png",))
    frame.to_csv(folder / f"{name}.csv", index=False)
    return [*paths, folder / f"{name}.csv"]


COMMAND = Command(name="coordcheck", synopsis="[--widths ..] [ovr]",
                  help="μP's coordinate check: layer activations against width for a few steps",
                  parse=parse, run=run)
