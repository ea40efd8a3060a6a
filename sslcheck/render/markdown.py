"""Markdown rendering: the same sections as the terminal table, as pipe tables."""

from __future__ import annotations

from typing import Any

from sslcheck.render.sections import Section, header_line, sections, verdict_text


def pipe_table(sec: Section) -> str:
    esc = [[cell.replace("|", "\\|") for cell in row] for row in sec.rows]
    lines = [f"| {' | '.join(sec.columns)} |", f"|{'|'.join('---' for _ in sec.columns)}|"]
    lines += [f"| {' | '.join(row)} |" for row in esc]
    return "\n".join(lines)


def to_markdown(data: dict[str, Any], title: str = "sslcheck score") -> str:
    reasons = [f"- {r}" for r in data["verdict"].get("reasons", [])]
    parts = [f"# {title}", "", f"**{verdict_text(data)}**", "", *reasons, *([""] if reasons else [])]
    parts += [header_line(data), ""]
    for sec in sections(data):
        parts += [f"## {sec.title}", "", pipe_table(sec), ""]
        parts += [f"- {n}" for n in sec.notes]
        if sec.notes:
            parts.append("")
    return "\n".join(parts).rstrip() + "\n"
