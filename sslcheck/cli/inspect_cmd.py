"""`sslcheck inspect FILE...`: what each embedding file holds, without loading it whole."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from sslcheck.cli.app import app, stdout_console
from sslcheck.cli.options import choice


@app.command("inspect")
def inspect_files(
    files: Annotated[list[str], typer.Argument(metavar="FILE...", help="Files, folders or globs of shards.")],
    key: Annotated[str | None, typer.Option(metavar="NAME", help="Only this array of each container.")] = None,
    format: Annotated[str, typer.Option("--format", "-f", metavar="table|json", help="Output format.")] = "table",
) -> None:
    """Shape, dtype, keys, size, NaN/Inf counts and quick statistics of each array.

    \b
    Example: sslcheck inspect sample_data/healthy.pt sample_data/healthy_za.npy
    """
    fmt = choice("--format", format, ("table", "json"))
    from sslcheck.describe import describe_array, describe_unusable
    from sslcheck.io import Unusable, open_all

    infos = [
        describe_unusable(src) if isinstance(src, Unusable) else describe_array(src)
        for path in files
        for src in open_all(path, key)
    ]
    if fmt == "json":
        from sslcheck.render.json import to_json

        sys.stdout.write(to_json({"arrays": infos}))
        return
    from rich.table import Table
    from rich.text import Text

    from sslcheck.render.sections import fmt as num

    table = Table(show_edge=False, pad_edge=False)
    for col in ("array", "format", "shape", "dtype", "MB", "NaN", "Inf", "std min/median/max", "dead", "row norm"):
        table.add_column(col)
    for info in infos:
        st = info["stats"] or {}
        label = _label(info)
        stds = "/".join(num(st.get(k)) for k in ("std_min", "std_median", "std_max")) if st else "n/a"
        if info["shape"] is None:
            table.add_row(Text(label), *["-"] * 9)
            continue
        table.add_row(
            Text(label),
            info["format"],
            "x".join(map(str, info["shape"])),
            info["dtype"],
            f"{info['nbytes'] / 2**20:.1f}",
            str(info["nan"]),
            str(info["inf"]),
            stds,
            num(st.get("dead_dims")),
            num(st.get("row_norm_mean")),
        )
    console = stdout_console()
    console.print(table)
    for info in infos:
        for note in info["notes"]:
            console.print(f"  {_label(info)}: {note}", style="dim", highlight=False, markup=False)


def _label(info: dict[str, Any]) -> str:
    return f"{info['path']}[{info['key']}]" if info["key"] else str(info["path"])
