"""report.html: one self-contained page, the same sections as the Markdown, plots inline.

No JavaScript, no external fonts, stylesheets or images: CSS in one <style>, plots as base64 PNG
data URIs, so the file can be mailed, attached to a CI run or opened offline. Every text taken
from the result (paths come from the user) goes through `html.escape`. Responsive: a max-width
column, tables that scroll sideways on a phone, images at 100 % width; printable (@media print).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from sslcheck.render.sections import Section, header_line, verdict_text

CSS = """
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;background:#fff;color:#1f2328;
 font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1160px;margin:0 auto;padding:20px 24px 40px}
h1{font-size:1.7em;margin:0 0 4px}
h2{font-size:1.3em;margin:32px 0 8px;padding-bottom:4px;border-bottom:1px solid #d0d7de}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.92em}
.meta{color:#57606a;margin:0;overflow-wrap:anywhere}
.verdict{margin:18px 0;padding:14px 18px;border-radius:8px;border-left:8px solid}
.verdict.ok{background:#e9f7ec;border-color:#1a7f37}
.verdict.warn{background:#fff8e1;border-color:#bf8700}
.verdict.bad{background:#ffebe9;border-color:#cf222e}
.verdict .status{font-size:1.45em;font-weight:700;margin:0}
.verdict ul{margin:8px 0 0;padding-left:1.3em}
.verdict p{margin:6px 0 0}
.verdict .status{margin:0}
nav ol{columns:2;margin:0;padding-left:1.4em}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;max-width:100%}
table{border-collapse:collapse;font-size:14px;margin:4px 0}
th,td{padding:4px 14px 4px 0;text-align:left;border-bottom:1px solid #eaeef2;white-space:nowrap}
th{border-bottom:2px solid #d0d7de;font-weight:600}
th.num,td.num{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:nth-child(even){background:#f6f8fa}
.notes{color:#57606a;font-size:13px;margin:6px 0 0;padding-left:1.3em;overflow-wrap:anywhere}
figure{margin:20px 0 28px}
figure img{display:block;width:100%;height:auto;border:1px solid #eaeef2}
figure.narrow img{max-width:760px}
figcaption{color:#424a53;font-size:14px;margin-top:6px}
footer{margin-top:36px;color:#57606a;font-size:13px;overflow-wrap:anywhere}
@media (max-width:640px){
 body{font-size:14px}
 main{padding:12px 12px 28px}
 h1{font-size:1.4em}
 .verdict{padding:10px 12px}
 .verdict .status{font-size:1.2em}
 nav ol{columns:1}
 table{font-size:13px}
}
@media print{
 body{font-size:11pt}
 main{max-width:none;padding:0}
 nav{display:none}
 .scroll{overflow:visible}
 th,td{white-space:normal}
 table{font-size:9pt}
 figure,table,.verdict{break-inside:avoid;page-break-inside:avoid}
 h2{break-after:avoid;page-break-after:avoid}
 .verdict,tbody tr:nth-child(even){-webkit-print-color-adjust:exact;print-color-adjust:exact}
 a{color:inherit;text-decoration:none}
}
"""

NUMBER = re.compile(r"^(n/a|[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?( ± [-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?)?)$", re.I)


@dataclass(frozen=True)
class EmbeddedPlot:
    """One plot for the page: its file stem, title, caption and PNG bytes."""

    stem: str
    title: str
    caption: str
    png: bytes
    narrow: bool = False


def anchor(title: str) -> str:
    """A stable fragment id for a section title."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"


def _cell(tag: str, text: str, numeric: bool) -> str:
    return f'<{tag} class="num">{escape(text)}</{tag}>' if numeric else f"<{tag}>{escape(text)}</{tag}>"


def _table(sec: Section) -> str:
    """Numbers right-aligned (columns after the first whose non-empty cells are all numbers)."""
    numeric = [
        i > 0 and any(row[i] for row in sec.rows) and all(NUMBER.match(row[i]) for row in sec.rows if row[i])
        for i in range(len(sec.columns))
    ]
    head = "".join(_cell("th", c, numeric[i]) for i, c in enumerate(sec.columns))
    body = ["<tr>" + "".join(_cell("td", c, numeric[i]) for i, c in enumerate(row)) + "</tr>" for row in sec.rows]
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _section(sec: Section) -> str:
    parts = [f'<section id="{anchor(sec.title)}">', f"<h2>{escape(sec.title)}</h2>"]
    if sec.caption:
        parts.append(f"<p>{escape(sec.caption)}</p>")
    parts.append(_table(sec))
    if sec.notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in sec.notes) + "</ul>")
    parts.append("</section>")
    return "\n".join(parts)


def _figure(plot: EmbeddedPlot) -> str:
    src = "data:image/png;base64," + base64.b64encode(plot.png).decode("ascii")
    cls = ' class="narrow"' if plot.narrow else ""
    return (
        f'<figure id="plot-{escape(plot.stem)}"{cls}><img src="{src}" alt="{escape(plot.title)}">'
        f"<figcaption><strong>{escape(plot.title)}.</strong> {escape(plot.caption)} "
        f'<span class="mono">plots/{escape(plot.stem)}.png / .svg</span></figcaption></figure>'
    )


def _verdict(data: dict[str, Any]) -> str:
    verdict = data["verdict"]
    status = verdict["status"]
    warned = any(f.get("kind") == "warn" for f in verdict.get("findings", []))
    cls = "bad" if status != "healthy" else "warn" if warned else "ok"
    reasons = verdict.get("reasons", [])
    items = (
        "<ul>" + "".join(f"<li>{escape(r)}</li>" for r in reasons) + "</ul>"
        if reasons
        else "<p>No collapse rule fired and no warning was raised.</p>"
    )
    status_line = f'<p class="status">{escape(verdict_text(data))}</p>'
    return f'<section class="verdict {cls}" id="verdict">{status_line}{items}</section>'


def to_html(
    data: dict[str, Any],
    secs: Sequence[Section],
    plots: Sequence[EmbeddedPlot],
    title: str = "sslcheck report",
    files: Sequence[str] = (),
) -> str:
    """The whole page: verdict and reasons first, then `secs` as tables, the plots, the file list."""
    toc = [(anchor(s.title), s.title) for s in secs]
    if plots:
        toc.append(("plots", "Plots"))
    body = [
        "<header>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">{escape(header_line(data))}</p>',
        "</header>",
        _verdict(data),
    ]
    if data.get("warnings"):
        body.append('<section id="warnings"><h2>Warnings</h2><ul>')
        body += [f"<li>{escape(w)}</li>" for w in data["warnings"]]
        body.append("</ul></section>")
    body.append(
        '<nav aria-label="Contents"><h2>Contents</h2><ol>'
        + "".join(f'<li><a href="#{a}">{escape(t)}</a></li>' for a, t in toc)
        + "</ol></nav>"
    )
    body += [_section(s) for s in secs]
    if plots:
        body.append('<section id="plots"><h2>Plots</h2>')
        body += [_figure(p) for p in plots]
        body.append("</section>")
    footer = f"sslcheck {data.get('sslcheck_version', '')}, scores.json schema {data.get('schema_version', '')}."
    if files:
        footer += " Written beside this page: " + ", ".join(files) + "."
    body.append(f"<footer>{escape(footer)}</footer>")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}: {escape(verdict_text(data))}</title>\n"
        f"<style>{CSS}</style>\n</head>\n<body>\n<main>\n" + "\n".join(body) + "\n</main>\n</body>\n</html>\n"
    )
