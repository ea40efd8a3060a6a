"""`sslcheck report`: one self-contained HTML page, Markdown whose links resolve, CSV tables and
plots that carry exactly the numbers of scores.json; an atomic folder; byte-identical SVGs."""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from sslcheck.cli import app
from sslcheck.engine import Settings, evaluate_files
from sslcheck.render import plots
from sslcheck.render.sections import STATUS_TEXT, verdict_text
from tests.data import sample

HEALTHY, DIMENSIONAL = sample("healthy"), sample("dimensional")
MAX_HTML_BYTES = 5 * 1024 * 1024
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def run_report(args: list[str]) -> tuple[int, str, str]:
    res = CliRunner().invoke(app, ["report", *args])
    return res.exit_code, res.stdout, res.stderr


def make_report(out: Path, *args: str) -> str:
    code, stdout, stderr = run_report([*args, "-o", str(out), "-q"])
    assert code == 0, stderr
    return stdout


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("healthy") / "report"
    return out, make_report(out, *HEALTHY)


@pytest.fixture(scope="module")
def dimensional(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("dimensional") / "report"
    return out, make_report(out, *DIMENSIONAL, "--flavor", "all")


@pytest.fixture(params=["healthy", "dimensional"])
def report(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue(request.param)[0]


def scores(folder: Path) -> dict:
    return json.loads((folder / "scores.json").read_text())


class Page(HTMLParser):
    """Tags, attributes, text and table rows of a page; `errors` lists tags closed out of order."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.rows: list[list[str]] = []
        self.errors: list[str] = []
        self._stack: list[str] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self._stack.append(tag)
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if self._stack and self._stack[-1] == tag:
            self._stack.pop()
        else:
            self.errors.append(f"</{tag}> closes {self._stack[-1:]}")
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def page(folder: Path) -> Page:
    return Page((folder / "report.html").read_text(encoding="utf-8"))


# ---- the folder and stdout -------------------------------------------------------------------


def test_stdout_lists_every_file_written(healthy):
    out, stdout = healthy
    listed = stdout.splitlines()
    assert listed[:3] == [str(out / "report.html"), str(out / "report.md"), str(out / "scores.json")]
    on_disk = sorted(str(p) for p in out.rglob("*") if p.is_file())
    assert sorted(listed) == on_disk
    for stem in plots.PLOTS:
        assert (out / "plots" / f"{stem}.png").is_file() and (out / "plots" / f"{stem}.svg").is_file()
    for table in ("losses", "diagnostics", "pair", "per_batch", "spectrum", "dimension_std", "cosines"):
        assert (out / "tables" / f"{table}.csv").is_file()
    assert not (out / "tables" / "flavors.csv").exists()
    assert [p.name for p in out.parent.iterdir()] == ["report"]  # no temporary folder left beside it


# ---- report.html ---------------------------------------------------------------------------------


def test_html_is_one_self_contained_file(report):
    raw = (report / "report.html").read_bytes()
    assert len(raw) < MAX_HTML_BYTES
    text = raw.decode("utf-8")
    assert "<script" not in text.lower()
    assert "url(" not in text and "@import" not in text
    doc = Page(text)
    assert not doc.errors and not doc._stack
    tags = [tag for tag, _ in doc.tags]
    assert tags.count("style") == 1 and tags.count("html") == 1
    assert not {"script", "link", "iframe", "object", "embed", "base"} & set(tags)
    for tag, attrs in doc.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            if name == "href":
                assert value and value.startswith("#"), value  # in-page anchors only
            if name == "src":
                assert value and value.startswith("data:image/png;base64,"), value[:40] if value else value
    images = [attrs for tag, attrs in doc.tags if tag == "img"]
    assert len(images) == len(plots.PLOTS)
    for (stem, (title, _)), attrs in zip(plots.PLOTS.items(), images, strict=True):
        assert attrs["alt"] == title
        png = base64.b64decode((attrs["src"] or "").split(",", 1)[1])
        assert png == (report / "plots" / f"{stem}.png").read_bytes()  # the inline image is the file
    for tag, attrs in doc.tags:
        if tag == "a":
            anchor = (attrs["href"] or "")[1:]
            assert any(a.get("id") == anchor for _, a in doc.tags), anchor
    assert '<meta name="viewport"' in text and "@media print" in text and "@media (max-width" in text


def test_html_names_the_verdict_every_metric_and_every_loss_term(report):
    data, doc = scores(report), page(report)
    text = " ".join(doc.text)
    status = data["verdict"]["status"]
    assert verdict_text(data) in text and STATUS_TEXT[status] in text
    for reason in data["verdict"]["reasons"]:
        assert reason in text
    first_cells = {row[0] for row in doc.rows if row}
    for key in data["diagnostics"]["za"]:
        assert key in text
        if key not in ("eigenvalues", "eigenvalues_top"):
            assert key in first_cells
    for key in data["diagnostics"]["pair"]:
        assert key in first_cells
    pairs = {(row[0], row[1]) for row in doc.rows if len(row) > 1}
    for loss, block in data["losses"].items():
        for term in block["whole_set"]:
            assert (loss, term) in pairs
        for flavor in block.get("by_flavor", {}):
            assert flavor in first_cells
    assert data["inputs"]["za"]["path"] in text


def test_dimensional_report_says_so(dimensional):
    out, _ = dimensional
    doc = page(out)
    assert scores(out)["verdict"]["status"] == "dimensional_collapse"
    assert "Verdict: dimensional collapse" in " ".join(doc.text)
    assert any(attrs.get("class") == "verdict bad" for _, attrs in doc.tags)
    assert any("by flavor" in t for t in doc.text)


# ---- report.md ------------------------------------------------------------------------------------


def test_markdown_is_text_first_and_its_links_resolve(report):
    md = (report / "report.md").read_text()
    data = scores(report)
    assert md.startswith("# sslcheck report\n")
    first_image = md.index("![")
    assert md.index(verdict_text(data)) < md.index("## Losses") < md.index("## Pair diagnostics") < first_image
    links = re.findall(r"\]\(([^)\s]+)\)", md)
    assert links
    for link in links:
        assert not re.match(r"[a-z]+:", link), link
        assert (report / link).is_file(), link
    for stem in plots.PLOTS:
        assert f"](plots/{stem}.png)" in md and f"](plots/{stem}.svg)" in md


# ---- the numbers: CSV and plots equal the JSON ------------------------------------------------------


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)  # pandas < 3 parses floats to within 1 ulp, hence rel 1e-15 below


def same(a, b) -> bool:
    """Equal numbers (rel 1e-15), None and NaN alike."""
    if b is None or (isinstance(b, float) and math.isnan(b)):
        return a is None or (isinstance(a, float) and math.isnan(a))
    return a == pytest.approx(b, rel=1e-15, abs=0)


def check_loss_rows(frame: pd.DataFrame, blocks: list[tuple[str, dict]]) -> None:
    expected = [(name, block, term) for name, block in blocks for term in block["whole_set"]]
    assert len(frame) == len(expected)
    for row, (name, block, term) in zip(frame.itertuples(index=False), expected, strict=True):
        assert (row.loss, row.flavor, row.term, row.n_batches) == (name, block["flavor"], term, block["n_batches"])
        assert same(row.whole_set, block["whole_set"][term])
        assert same(row.weight, block["weights"].get(term))
        for stat in ("mean", "std", "min", "max"):
            assert same(getattr(row, f"per_batch_{stat}"), block["per_batch"][term][stat])


def test_csv_tables_round_trip_to_the_json(report):
    data, tables = scores(report), report / "tables"
    check_loss_rows(read_csv(tables / "losses.csv"), list(data["losses"].items()))
    if (tables / "flavors.csv").exists():
        blocks = [(name, b) for name, loss in data["losses"].items() for b in loss["by_flavor"].values()]
        check_loss_rows(read_csv(tables / "flavors.csv"), blocks)
        assert data["settings"]["flavor"] == "all"
    diag = read_csv(tables / "diagnostics.csv").set_index("metric")
    for view in ("za", "zb"):
        for key, value in data["diagnostics"][view].items():
            if not isinstance(value, list):
                assert same(diag.loc[key, view], value), (view, key)
    pair = read_csv(tables / "pair.csv").set_index("metric")["value"]
    assert list(pair.index) == list(data["diagnostics"]["pair"])
    for key, value in data["diagnostics"]["pair"].items():
        assert same(pair[key], value)
    spectrum = read_csv(tables / "spectrum.csv")
    assert list(spectrum["k"]) == list(range(1, data["inputs"]["d"] + 1))
    for view in ("za", "zb"):
        np.testing.assert_allclose(spectrum[view], data["diagnostics"][view]["eigenvalues"], rtol=1e-15, atol=0)
    per_batch = read_csv(tables / "per_batch.csv")
    for loss, block in data["losses"].items():
        for term, summary in block["per_batch"].items():
            values = per_batch[f"{loss}.{term}"].to_numpy()
            assert values.size == block["n_batches"]
            assert same(float(values.mean()), summary["mean"]) and same(float(values.std()), summary["std"])
            assert same(float(values.min()), summary["min"]) and same(float(values.max()), summary["max"])
    verdict = read_csv(tables / "verdict.csv")
    assert list(verdict["message"].fillna("")) == [f["message"] for f in data["verdict"]["findings"]]


def test_plots_draw_exactly_the_json_numbers(healthy):
    out, _ = healthy
    data = scores(out)
    result = evaluate_files(HEALTHY[0], HEALTHY[1], Settings())
    assert result.to_dict()["diagnostics"] == data["diagnostics"]  # the same evaluation as the CLI's
    figs = plots.report_figures(result)
    diag = data["diagnostics"]
    for view in ("za", "zb"):
        eig = np.array(diag[view]["eigenvalues"])
        for stem in ("spectrum", "spectrum_loglog"):
            k, y = plots.line_data(figs[stem], f"{view}.eigenvalues")
            assert np.array_equal(y, eig) and np.array_equal(k, np.arange(1, eig.size + 1))
        k, fit = plots.line_data(figs["spectrum_loglog"], f"{view}.alpha_req_fit")
        intercept, alpha = result.arrays[f"{view}.alpha_req_fit"]
        assert alpha == diag[view]["alpha_req"]
        np.testing.assert_allclose(fit, np.exp(intercept - alpha * np.log(k)), rtol=1e-12)
        _, std = plots.line_data(figs["dimension_std"], f"{view}.std_sorted")
        assert std.size == data["inputs"]["d"] and np.all(np.diff(std) <= 0)
        assert std.mean() == pytest.approx(diag[view]["std_mean"], rel=1e-12)
        assert std.min() == pytest.approx(diag[view]["std_min"], rel=1e-12)
    gamma = data["losses"]["vicreg"]["params"]["gamma"]
    assert np.all(plots.line_data(figs["dimension_std"], "vicreg_gamma")[1] == gamma)
    level = plots.line_data(figs["dimension_std"], "inverse_sqrt_d")[1]
    assert np.all(level == 1 / math.sqrt(data["inputs"]["d"]))
    image = figs["cross_correlation"].axes[0].images[0]
    assert image.get_clim() == (-1.0, 1.0)
    assert np.array_equal(np.asarray(image.get_array()), result.arrays["pair.cross_correlation"])
    per_batch = read_csv(out / "tables" / "per_batch.csv")
    ax_points = {c.get_gid(): c for ax in figs["per_batch_losses"].axes for c in ax.collections}
    for loss, block in data["losses"].items():
        for term in block["whole_set"]:
            drawn = np.asarray(ax_points[f"{loss}.{term}"].get_offsets())[:, 0]
            np.testing.assert_allclose(drawn, per_batch[f"{loss}.{term}"], rtol=1e-15, atol=0)
            assert np.array_equal(drawn, result.losses[loss].per_batch_values[term])
            whole, _ = plots.line_data(figs["per_batch_losses"], f"{loss}.{term}.whole_set")
            assert whole[0] == block["whole_set"][term]
    for name in ("positive_cosines", "random_cosines"):
        assert result.arrays[f"pair.{name}"].size == data["settings"]["sample_size"]
    title = " ".join(t.get_text() for t in figs["per_batch_losses"].texts)
    assert "N = 1024, D = 64, B = 256" in title and "flavor paper" in title


def test_large_d_heatmap_is_block_averaged_and_says_so():
    rng = np.random.default_rng(0)
    d = 600
    corr = np.clip(rng.standard_normal((d, d)) / 3, -1, 1)
    small, f = plots.block_average(corr)
    assert f == 3 and small.shape == (200, 200)
    assert small[1, 2] == pytest.approx(corr[3:6, 6:9].mean(), rel=1e-12)
    uneven, f = plots.block_average(corr[:301, :301])
    assert f == 2 and uneven.shape == (151, 151) and uneven[-1, -1] == corr[300, 300]
    ctx = plots.PlotContext(n=1000, d=d, batch_size=256, flavor="paper", dtype="float32")
    fig = plots.cross_correlation_plot({"pair.cross_correlation": corr}, ctx)
    assert "block-averaged over 3 x 3" in fig.axes[0].get_title()
    assert np.array_equal(np.asarray(fig.axes[0].images[0].get_array()), small)


# ---- atomic folder, --force, determinism ------------------------------------------------------------


def test_existing_folder_needs_force_and_user_text_is_escaped(tmp_path, pair):
    weird = tmp_path / 'in<i>&"'  # paths come from the user and end up in the page
    weird.mkdir()
    za, zb = shutil.copy(pair[0], weird / "za.npy"), shutil.copy(pair[1], weird / "zb.npy")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, stdout, stderr = run_report([str(za), str(zb), "-o", str(out)])
    assert code == 2 and stdout == ""
    assert stderr.startswith("Error: ") and len(stderr.strip().splitlines()) == 1 and "--force" in stderr
    assert (out / "keep.txt").read_text() == "mine"
    code, stdout, stderr = run_report([str(za), str(zb), "-o", str(out), "--force"])  # not a report: kept
    assert code == 2 and stdout == "" and "is not an sslcheck report" in stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    (out / "scores.json").write_text("{}")  # an earlier report's folder: --force replaces it whole
    stdout = make_report(out, str(za), str(zb), "--force")
    assert not (out / "keep.txt").exists() and (out / "report.html").is_file()
    assert stdout.splitlines()[0] == str(out / "report.html")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # nothing renamed aside is left
    html = (out / "report.html").read_text()
    assert "<i>" not in html and "in&lt;i&gt;&amp;&quot;" in html
    assert str(za) in " ".join(Page(html).text)


def test_a_crash_leaves_no_folder_and_no_temporary(tmp_path, pair, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(plots, "cross_correlation_plot", boom)
    out = tmp_path / "reports" / "run1"
    code, stdout, stderr = run_report([*pair, "-o", str(out), "-q"])
    assert code == 2 and stdout == "" and "plot failed" in stderr
    assert not out.exists() and list(out.parent.iterdir()) == []
    out.mkdir()
    (out / "report.html").write_text("old report")
    code, _, stderr = run_report([*pair, "-o", str(out), "--force", "-q"])
    assert code == 2 and "plot failed" in stderr
    assert [p.name for p in out.iterdir()] == ["report.html"] and [p.name for p in out.parent.iterdir()] == ["run1"]
    assert (out / "report.html").read_text() == "old report"


def test_a_folder_the_system_refuses_is_one_error_line(pair):
    if not Path("/proc").is_dir():
        pytest.skip("no /proc")
    code, stdout, stderr = run_report([*pair, "-o", "/proc/sslcheck-report", "-q"])
    assert code == 2 and stdout == ""
    [line] = stderr.strip().splitlines()
    assert line.startswith("Error: /proc/sslcheck-report: cannot write") and "internal error" not in line


def test_same_input_gives_byte_identical_files(healthy, tmp_path):
    first, _ = healthy
    second = tmp_path / "again"
    make_report(second, *HEALTHY)
    svgs = sorted(p.relative_to(first) for p in first.rglob("*.svg"))
    assert len(svgs) == len(plots.PLOTS)
    for rel in [*svgs, Path("report.html"), Path("report.md")]:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel
    svg = (first / "plots" / "spectrum.svg").read_text()
    assert "<dc:date>" not in svg and "Matplotlib v" not in svg


def test_help_names_the_options_and_ends_with_an_example():
    res = CliRunner().invoke(app, ["report", "--help"])
    assert res.exit_code == 0
    assert "--output" in res.stdout and "--force" in res.stdout and "--flavor" in res.stdout
    assert "Example: sslcheck report" in res.stdout


# ---- a real browser -------------------------------------------------------------------------------------


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.mark.skipif(chromium() is None, reason="Chromium is not installed (apt-get install chromium)")
def test_chromium_renders_the_page(healthy, tmp_path):
    import matplotlib.image

    out, _ = healthy
    shot = tmp_path / "shot.png"
    cmd = [
        str(chromium()), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
        "--hide-scrollbars", f"--screenshot={shot}", "--window-size=1200,2000", (out / "report.html").as_uri(),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert shot.is_file(), proc.stderr[-2000:]
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (2000, 1200)
    rgb = pixels[..., :3]
    assert rgb.std() > 0.02 and rgb.mean() < 0.99  # text, tables and the verdict box, not a blank page
    green_box = (rgb[..., 1] > rgb[..., 0] + 0.03) & (rgb[..., 1] > rgb[..., 2] + 0.03)
    assert green_box[:400].sum() > 10_000  # the healthy verdict box near the top
