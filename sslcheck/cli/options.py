"""The option bundle shared by `score`, `check` and `report`: one definition, one parser.

`run_options` merges the bundle's parameters into a command's signature (Typer reads the
signature), and hands the command one `RunOptions` instead of twenty arguments.
"""

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
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
            **extra,
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


Za = Annotated[str, typer.Argument(help=ZA_HELP, show_default=False)]
Zb = Annotated[str | None, typer.Argument(help=ZB_HELP, show_default=False)]


def _bundle(
    loss: Annotated[
        list[str],
        typer.Option(
            "--loss",
            help="Loss to compute (repeatable): vicreg, barlow, nt-xent, ... or all. Default: vicreg, barlow, nt-xent.",
            show_default=False,
        ),
    ] = [],  # noqa: B006
    flavor: Annotated[
        str,
        typer.Option(help="Numeric convention: paper, lightly, solo-learn, tf-similarity, quadra, edifice, or all."),
    ] = "paper",
    set_: Annotated[
        list[str],
        typer.Option("--set", help="Override a parameter, e.g. --set vicreg.mu=50 (repeatable).", show_default=False),
    ] = [],  # noqa: B006
    batch_size: Annotated[str, typer.Option(help="Rows per batch, as in training; 'all' for one batch of N.")] = "256",
    keep_last: Annotated[
        bool, typer.Option("--keep-last", help="Score a short last batch too (default: dropped, as in training).")
    ] = False,
    labels: Annotated[
        str | None, typer.Option(help="Integer class labels [N] (.npy or .txt): adds kNN accuracy.", show_default=False)
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(help="Array name inside .npz/.pt/.safetensors containers (both views).", show_default=False),
    ] = None,
    key_a: Annotated[str | None, typer.Option(help="Array name for ZA.", show_default=False)] = None,
    key_b: Annotated[str | None, typer.Option(help="Array name for ZB.", show_default=False)] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    dtype: Annotated[
        str, typer.Option(help="Compute precision: float32 or float64 (merged statistics are always float64).")
    ] = "float32",
    threads: Annotated[
        int | None, typer.Option(help="CPU threads for torch (default: torch's choice).", show_default=False)
    ] = None,
    config: Annotated[
        str | None,
        typer.Option(
            help="TOML config file (default: [tool.sslcheck] in pyproject.toml, or sslcheck.toml).", show_default=False
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, warnings or notes on stderr.")] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of internal errors.")] = False,
) -> None:
    """Signature holder for the shared options (never called)."""


def run_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give `command(run: RunOptions, **own)` the arguments ZA ZB, its own options and the bundle."""
    own = [p for name, p in inspect.signature(command).parameters.items() if name != "run"]
    bundle = list(inspect.signature(_bundle).parameters.values())
    views = [
        inspect.Parameter("za", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Za),
        inspect.Parameter("zb", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Zb, default=None),
    ]
    names = {"za", "zb", *(p.name for p in bundle)}

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        run = RunOptions(**{k: kwargs.pop(k) for k in list(kwargs) if k in names})
        return command(run=run, **kwargs)

    params = views + own + bundle
    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper
