"""The option bundle shared by `score`, `check` and `report`: one definition, one parser.

`run_options` merges the bundle's parameters into a command's signature (Typer reads the
signature), and hands the command one `RunOptions` instead of twenty arguments.
"""

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer

from sslcheck.errors import UsageError

ZA_HELP = "First view [N, D]: .npy, .npz, .pt/.pth, .safetensors, or a folder / glob of shards."
ZB_HELP = "Second view (same N samples, same order). Omit it when ZA holds both (keys za/zb)."


@dataclass
class RunOptions:
    """What every scoring command reads: the inputs and the evaluation settings."""

    za: str
    zb: str | None
    loss: list[str]
    flavor: str
    set_: list[str]
    batch_size: str
    keep_last: bool
    labels: str | None
    key: str | None
    key_a: str | None
    key_b: str | None
    device: str
    dtype: str
    threads: int | None
    config: str | None
    quiet: bool
    no_progress: bool
    debug: bool
    config_values: dict[str, Any] = field(default_factory=dict)

    def apply_config(self, explicit: set[str]) -> None:
        """Fill every option the command line left at its default from the config file."""
        from sslcheck.config import as_items, load_config

        self.config_values = load_config(self.config).values
        for key, value in self.config_values.items():
            name = "set_" if key == "set" else key
            if name not in CONFIG_FIELDS or name in explicit:
                continue
            if name in ("loss", "set_"):
                value = as_items(value)
            elif name == "batch_size":
                value = str(value)
            setattr(self, name, value)

    def settings(self, **extra: Any) -> Any:
        """The engine's `Settings` (imports torch: call it inside a command, never at import)."""
        from sslcheck.engine import DEFAULT_LOSSES, Settings

        return Settings(
            losses=tuple(self.loss) or DEFAULT_LOSSES,
            flavor=self.flavor,
            overrides=parse_sets(self.set_),
            batch_size=parse_batch_size(self.batch_size),
            drop_last=not self.keep_last,
            dtype=choice("--dtype", self.dtype, ("float32", "float64")),  # type: ignore[arg-type]
            device=choice("--device", self.device, ("auto", "cpu", "cuda")),
            threads=self.threads,
            thresholds=self.config_values.get("thresholds", {}),
            **extra,
        )


CONFIG_FIELDS = (
    "loss",
    "flavor",
    "set_",
    "batch_size",
    "keep_last",
    "labels",
    "key",
    "key_a",
    "key_b",
    "device",
    "dtype",
    "threads",
)


def choice(option: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise UsageError(f"{option} {value}: expected one of {', '.join(allowed)}")
    return value


def parse_batch_size(raw: str) -> int | None:
    """`all` -> None (one batch of N); else an integer >= 2."""
    if raw.strip().lower() == "all":
        return None
    try:
        b = int(raw)
    except ValueError:
        raise UsageError(f"--batch-size {raw}: expected an integer >= 2 or 'all'") from None
    if b < 2:
        raise UsageError(f"--batch-size {raw}: a batch needs at least 2 rows (every variance divides by B - 1)")
    return b


def parse_sets(items: list[str]) -> dict[str, dict[str, str]]:
    """`--set loss.param=value` items -> {loss key: {param: value}}."""
    from sslcheck.losses.flavors import loss_key

    out: dict[str, dict[str, str]] = {}
    for item in items:
        target, sep, value = item.partition("=")
        loss, dot, param = target.strip().partition(".")
        if not sep or not dot or not param or not value.strip():
            raise UsageError(f"--set {item}: expected LOSS.PARAM=VALUE, e.g. --set vicreg.mu=50")
        out.setdefault(loss_key(loss), {})[param.strip()] = value.strip()
    return out


Za = Annotated[str, typer.Argument(help=ZA_HELP, metavar="ZA", show_default=False)]
Zb = Annotated[str | None, typer.Argument(help=ZB_HELP, metavar="ZB", show_default=False)]


def _opt(*names: str, metavar: str | None = None, help: str, show_default: bool = True) -> Any:
    return typer.Option(*names, metavar=metavar, help=help, show_default=show_default)


def _bundle(
    loss: Annotated[
        list[str],
        _opt(
            "--loss",
            metavar="NAME",
            show_default=False,
            help="Loss to compute (repeatable): vicreg, barlow, nt-xent, ... or all. Default: vicreg, barlow, nt-xent.",
        ),
    ] = [],  # noqa: B006
    flavor: Annotated[
        str,
        _opt(
            metavar="NAME", help="Numeric convention: paper, lightly, solo-learn, tf-similarity, quadra, edifice, all."
        ),
    ] = "paper",
    set_: Annotated[
        list[str],
        _opt(
            "--set",
            metavar="LOSS.PARAM=VALUE",
            show_default=False,
            help="Override a parameter, e.g. --set vicreg.mu=50 (repeatable).",
        ),
    ] = [],  # noqa: B006
    batch_size: Annotated[
        str, _opt(metavar="B", help="Rows per batch, as in training; 'all' for one batch of N.")
    ] = "256",
    keep_last: Annotated[
        bool, _opt("--keep-last", help="Score a short last batch too (default: dropped, as in training).")
    ] = False,
    labels: Annotated[
        str | None,
        _opt(metavar="FILE", show_default=False, help="Integer class labels [N] (.npy or .txt): adds kNN accuracy."),
    ] = None,
    key: Annotated[
        str | None,
        _opt(metavar="NAME", show_default=False, help="Array name inside .npz/.pt/.safetensors (both views)."),
    ] = None,
    key_a: Annotated[str | None, _opt(metavar="NAME", show_default=False, help="Array name for ZA.")] = None,
    key_b: Annotated[str | None, _opt(metavar="NAME", show_default=False, help="Array name for ZB.")] = None,
    device: Annotated[str, _opt(metavar="auto|cpu|cuda", help="Where to compute.")] = "auto",
    dtype: Annotated[
        str, _opt(metavar="float32|float64", help="Compute precision (merged statistics are always float64).")
    ] = "float32",
    threads: Annotated[
        int | None, _opt(metavar="N", show_default=False, help="CPU threads for torch (default: torch's choice).")
    ] = None,
    config: Annotated[
        str | None,
        _opt(
            metavar="FILE",
            show_default=False,
            help="TOML config (default: [tool.sslcheck] in the nearest pyproject.toml, or sslcheck.toml).",
        ),
    ] = None,
    quiet: Annotated[bool, _opt("--quiet", "-q", help="No progress bar, warnings or notes on stderr.")] = False,
    no_progress: Annotated[bool, _opt("--no-progress", help="No progress bar.")] = False,
    debug: Annotated[bool, _opt("--debug", help="Show tracebacks of internal errors.")] = False,
) -> None:
    """Signature holder for the shared options (never called)."""


def run_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give `command(run: RunOptions, **own)` the arguments ZA ZB, its own options and the bundle."""
    own = [p for name, p in inspect.signature(command, eval_str=True).parameters.items() if name != "run"]
    bundle = list(inspect.signature(_bundle).parameters.values())
    views = [
        inspect.Parameter("za", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Za),
        inspect.Parameter("zb", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Zb, default=None),
    ]
    names = {"za", "zb", *(p.name for p in bundle)}

    context = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)

    @functools.wraps(command)
    def wrapper(ctx: typer.Context, **kwargs: Any) -> Any:
        run = RunOptions(**{k: kwargs.pop(k) for k in list(kwargs) if k in names})
        explicit = {k for k in names if (src := ctx.get_parameter_source(k)) is not None and src.name != "DEFAULT"}
        run.apply_config(explicit)
        return command(run=run, **kwargs)

    params = views + own + bundle + [context]
    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper
