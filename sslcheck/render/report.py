"""A report folder for one result: report.html, report.md, scores.json, CSV tables and plots.

`write_report` builds the whole folder under a hidden temporary name beside the target and renames
it into place at the end, so a crash or Ctrl-C never leaves half a report (nor the temporary folder).

Layout of DIR:
    report.html                   one self-contained page (`sslcheck.render.report_html`)
    report.md                     the Markdown tables, then the plots by relative path
    scores.json                   `Result.to_dict()`: the JSON contract
    tables/losses.csv             loss, flavor, term, weight, whole_set, per_batch_{mean,std,min,max}, n_batches
    tables/flavors.csv            the same for every flavor (only with --flavor all)
    tables/diagnostics.csv        metric, za, zb (scalar per-view diagnostics)
    tables/pair.csv               metric, value
    tables/verdict.csv            kind, rule, metric, value, threshold, message (one row per finding)
    tables/per_batch.csv          batch, then one column <loss>.<term> per loss term
    tables/spectrum.csv           k, za, zb: covariance eigenvalues, descending
    tables/dimension_std.csv      dimension, za, zb: per-dimension std (ddof 1)
    tables/cosines.csv            sample, positive, random: the pair cosines of the diagnostics sample
    plots/<stem>.png, .svg        `sslcheck.render.plots.PLOTS`
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from sslcheck.errors import UsageError
from sslcheck.render import plots
from sslcheck.render.json import to_json
from sslcheck.render.markdown import pipe_table, to_markdown
from sslcheck.render.report_html import EmbeddedPlot, to_html
from sslcheck.render.sections import PER_VIEW_SKIP, Section, fmt, sections
from sslcheck.result import Result

TITLE = "sslcheck report"
SUMMARY_COLUMNS = ["per_batch_mean", "per_batch_std", "per_batch_min", "per_batch_max"]
NARROW_PLOTS = ("cross_correlation",)
REPORT_MARKERS = ("scores.json", "report.html")  # what makes an existing folder one --force may replace


def check_target(out_dir: str | Path, force: bool = False) -> Path:
    """The report folder as an absolute path; UsageError where it cannot be (re)placed: it exists
    without `force`, or it holds files and is not a report (`--force` on a folder of data would
    have deleted it)."""
    target = Path(os.path.abspath(out_dir))
    cwd = Path.cwd()
    if target == cwd or target in cwd.parents:
        raise UsageError(f"{out_dir}: refusing to write a report over the current folder or one of its parents")
    if target.exists() or target.is_symlink():
        if not target.is_dir():
            raise UsageError(f"{out_dir} exists and is not a folder")
        if not force:
            raise UsageError(f"{out_dir} exists; use --force to replace it")
        if any(target.iterdir()) and not any((target / name).is_file() for name in REPORT_MARKERS):
            raise UsageError(
                f"{out_dir} is not an sslcheck report (no {' or '.join(REPORT_MARKERS)}): --force replaces "
                "only a report folder; remove it yourself or choose another"
            )
    base = next(p for p in target.parents if p.exists())  # the folder its missing parents go in
    if not base.is_dir():
        raise UsageError(f"{out_dir}: cannot create the folder {target.parent} ({base} is not a folder)")
    if not os.access(base, os.W_OK | os.X_OK):
        raise UsageError(f"{out_dir}: cannot write in {base} (permission denied)")
    return target


def write_report(result: Result, out_dir: str | Path, force: bool = False) -> list[Path]:
    """Write the report folder `out_dir` for `result`; returns the paths written (report.html,
    report.md, scores.json, tables, plots), each `out_dir / relative`.

    Atomic: everything goes into a hidden temporary folder beside `out_dir`, renamed into place at
    the end; with `force` an existing `out_dir` is renamed aside first and deleted after. Any
    exception removes the temporary folder and leaves an existing `out_dir` as it was.
    Raises UsageError when `out_dir` exists and `force` is False, or is a file.
    """
    target = check_target(out_dir, force)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"{out_dir}: cannot create the folder {target.parent} ({err.strerror})") from None
    try:
        tmp = _fresh_folder(target, "tmp")
    except OSError as err:
        raise UsageError(f"{out_dir}: cannot write in {target.parent} ({err.strerror})") from None
    try:
        written = _write_contents(result, tmp)
        _move_into_place(tmp, target)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError):
            raise UsageError(f"{out_dir}: cannot write the report ({err.strerror})") from None
        raise
    return [Path(out_dir) / rel for rel in written]


def _fresh_folder(target: Path, kind: str) -> Path:
    """A new hidden folder beside `target` (made with the umask's permissions, unlike mkdtemp's 0700)."""
    while True:
        path = target.with_name(f".{target.name}.{secrets.token_hex(4)}.{kind}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def _move_into_place(tmp: Path, target: Path) -> None:
    if not (target.exists() or target.is_symlink()):
        os.rename(tmp, target)
        return
    old = _fresh_folder(target, "old")
    old.rmdir()
    os.rename(target, old)
    try:
        os.rename(tmp, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _write_contents(result: Result, folder: Path) -> list[str]:
    """Every file of the report under `folder`; returns their relative paths, report.html first."""
    data = result.to_dict()
    written: list[str] = []

    def put(rel: str, content: str | bytes) -> None:
        path = folder / rel
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        written.append(rel)

    put("scores.json", to_json(data))
    for name, frame in report_tables(result, data).items():
        put(f"tables/{name}.csv", frame.to_csv(index=False, lineterminator="\n"))
    embedded = []
    for stem, fig in plots.report_figures(result).items():
        png = plots.figure_bytes(fig, "png")
        put(f"plots/{stem}.png", png)
        put(f"plots/{stem}.svg", plots.figure_bytes(fig, "svg"))
        title, caption = plots.PLOTS[stem]
        embedded.append(EmbeddedPlot(stem, title, caption, png, narrow=stem in NARROW_PLOTS))
    extra = extra_sections(data)
    others = [rel for rel in written if not rel.startswith("plots/")]
    put("report.md", report_markdown(data, extra, [p.stem for p in embedded], others))
    put("report.html", to_html(data, [*sections(data), *extra], embedded, TITLE, ["report.md", *others, "plots/"]))
    return [written[-1], written[-2], *written[:-2]]


def extra_sections(data: dict[str, Any]) -> list[Section]:
    """What the report adds to `sections()`: `eigenvalues_top` of both views, and the inputs."""
    out = []
    diag = data.get("diagnostics") or {}
    za, zb = diag.get("za", {}).get("eigenvalues_top"), diag.get("zb", {}).get("eigenvalues_top")
    if za is not None and zb is not None:
        rows = [[str(k + 1), fmt(a), fmt(b)] for k, (a, b) in enumerate(zip(za, zb, strict=False))]
        out.append(
            Section(
                "Top eigenvalues (eigenvalues_top)",
                ["k", "za", "zb"],
                rows,
                notes=["all eigenvalues: tables/spectrum.csv and the spectrum plots"],
            )
        )
    rows = []
    for view in ("za", "zb"):
        inp = data["inputs"][view]
        shape = " x ".join(str(s) for s in inp["shape"])
        rows.append(
            [
                view,
                inp["path"],
                "" if inp.get("key") is None else str(inp["key"]),
                shape,
                inp["dtype"],
                str(inp.get("format", "")),
            ]
        )
    out.append(Section("Inputs", ["view", "path", "key", "shape", "dtype", "format"], rows))
    return out


def report_markdown(data: dict[str, Any], extra: list[Section], stems: list[str], files: list[str]) -> str:
    """`to_markdown` (verdict, reasons, the tables), the `extra` sections, then the plots (`stems`)
    and `files` by relative path: ready to paste into a pull request next to the folder."""
    parts = [to_markdown(data, TITLE).rstrip(), ""]
    for sec in extra:
        parts += [f"## {sec.title}", "", pipe_table(sec), ""]
        parts += [f"- {n}" for n in sec.notes]
        if sec.notes:
            parts.append("")
    parts += ["## Plots", ""]
    for stem in stems:
        title, caption = plots.PLOTS[stem]
        parts += [f"### {title}", "", f"![{title}](plots/{stem}.png)", "", f"{caption} ([SVG](plots/{stem}.svg))", ""]
    parts += ["## Files", "", "- [report.html](report.html): this report as one self-contained page"]
    parts += [f"- [{rel}]({rel})" for rel in files]
    return "\n".join(parts).rstrip() + "\n"


def report_tables(result: Result, data: dict[str, Any] | None = None) -> dict[str, pd.DataFrame]:
    """The report's CSV tables, keyed by file stem (see the module docstring for the columns).
    Scalars come from the JSON `data` (default `result.to_dict()`); the long arrays from `result`."""
    data = result.to_dict() if data is None else data
    tables: dict[str, pd.DataFrame] = {"losses": _loss_frame(data["losses"], lambda name, loss: [loss])}
    if any(loss.get("by_flavor") for loss in data["losses"].values()):
        tables["flavors"] = _loss_frame(
            data["losses"], lambda name, loss: list(loss.get("by_flavor", {}).values()) or [loss]
        )
    diag = data.get("diagnostics") or {}
    za, zb = diag.get("za", {}), diag.get("zb", {})
    metrics = [k for k in za if k not in PER_VIEW_SKIP]
    # object columns: integer metrics stay integers (dead_dims 0, not 0.0), None an empty cell
    tables["diagnostics"] = pd.DataFrame(
        {"metric": metrics, "za": [za[k] for k in metrics], "zb": [zb.get(k) for k in metrics]}, dtype=object
    )
    pair = diag.get("pair", {})
    tables["pair"] = pd.DataFrame({"metric": list(pair), "value": list(pair.values())}, dtype=object)
    findings = data["verdict"].get("findings", [])
    columns = ["kind", "rule", "metric", "value", "threshold", "message"]
    tables["verdict"] = pd.DataFrame([{c: f.get(c) for c in columns} for f in findings], columns=columns)
    batches = {
        f"{name}.{term}": pd.Series(values, dtype=float)
        for name, loss in result.losses.items()
        for term, values in loss.per_batch_values.items()
    }
    per_batch = pd.DataFrame(batches)
    per_batch.insert(0, "batch", range(len(per_batch)))
    tables["per_batch"] = per_batch
    arrays = result.arrays
    tables["spectrum"] = _views_frame("k", za.get("eigenvalues"), zb.get("eigenvalues"), start=1)
    tables["dimension_std"] = _views_frame("dimension", arrays.get("za.std"), arrays.get("zb.std"), start=0)
    pos, rnd = arrays.get("pair.positive_cosines"), arrays.get("pair.random_cosines")
    if pos is not None and rnd is not None:
        tables["cosines"] = pd.DataFrame({"sample": range(len(pos)), "positive": pos, "random": rnd})
    return tables


def _views_frame(index: str, za: Any, zb: Any, start: int) -> pd.DataFrame:
    za = [] if za is None else za
    zb = [] if zb is None else zb
    frame = pd.DataFrame({"za": pd.Series(za, dtype=float), "zb": pd.Series(zb, dtype=float)})
    frame.insert(0, index, range(start, start + len(frame)))
    return frame


def _loss_frame(losses: dict[str, Any], blocks: Callable[[str, dict[str, Any]], list[dict[str, Any]]]) -> pd.DataFrame:
    rows = []
    for name, loss in losses.items():
        for block in blocks(name, loss):
            weights = block.get("weights", {})
            for term, whole in block["whole_set"].items():
                pb = block["per_batch"].get(term, {})
                rows.append(
                    {
                        "loss": name,
                        "flavor": block["flavor"],
                        "term": term,
                        "weight": weights.get(term),
                        "whole_set": whole,
                        **{col: pb.get(col.removeprefix("per_batch_")) for col in SUMMARY_COLUMNS},
                        "n_batches": block["n_batches"],
                    }
                )
    columns = ["loss", "flavor", "term", "weight", "whole_set", *SUMMARY_COLUMNS, "n_batches"]
    return pd.DataFrame(rows, columns=columns).astype({c: float for c in ["weight", "whole_set", *SUMMARY_COLUMNS]})
