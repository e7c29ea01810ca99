"""The same report as Markdown: text and tables (plots are in report.html; Markdown viewers in CI and
code review strip or block inline images)."""

from __future__ import annotations

from fridgebench.report.blocks import Block, Figure, Heading, Para, Table


def _cell(v: object) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def render_markdown(title: str, blocks: list[Block], *, footer: str = "") -> str:
    out = [f"# {title}", ""]
    for b in blocks:
        if isinstance(b, Heading):
            out += [f"{'#' * max(2, min(4, b.level))} {b.text}", ""]
        elif isinstance(b, Para):
            prefix = "> **warning:** " if b.tone == "warning" else "*" if b.tone == "note" else ""
            suffix = "*" if b.tone == "note" else ""
            out += [f"{prefix}{b.text}{suffix}", ""]
        elif isinstance(b, Table):
            out.append("| " + " | ".join(_cell(c) or " " for c in b.columns) + " |")
            out.append("|" + "|".join("---:" if j in b.numeric else "---" for j in range(len(b.columns))) + "|")
            for row in b.rows:
                out.append("| " + " | ".join(_cell(v) for v in row) + " |")
            out.append("")
            if b.caption:
                out += [f"*{b.caption}*", ""]
        elif isinstance(b, Figure):
            out += [f"*Plot in report.html: {b.caption}*", ""]
    if footer:
        out += ["---", footer, ""]
    return "\n".join(out)
