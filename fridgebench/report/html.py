"""A self-contained HTML page: inline CSS and SVG, no script, no network; readable on a phone."""

from __future__ import annotations

from html import escape

from fridgebench.report.blocks import Block, Figure, Heading, Para, Table

CSS = """
:root { color-scheme: light; --fg:#1d2329; --muted:#5b6670; --line:#dde3e8; --bg:#fff; --soft:#f5f7f9; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Noto Sans", "Noto Sans KR", sans-serif;
       color: var(--fg); background: var(--bg); }
main { max-width: 980px; margin: 0 auto; padding: 16px; }
h1 { font-size: 1.45rem; margin: 0.4em 0; } h2 { font-size: 1.2rem; margin: 1.8em 0 0.5em;
     border-bottom: 1px solid var(--line); padding-bottom: 4px; } h3 { font-size: 1.05rem; margin: 1.2em 0 0.4em; }
h4 { font-size: 0.95rem; margin: 1em 0 0.3em; }
p { margin: 0.5em 0; } p.lead { font-size: 1.05rem; } p.note { color: var(--muted); font-size: 0.9rem; }
p.warning { background: #fff6e0; border-left: 4px solid #e0a000; padding: 6px 10px; }
nav { font-size: 0.9rem; color: var(--muted); } nav a { margin-right: 10px; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; margin: 0.6em 0; }
table { border-collapse: collapse; font-size: 0.86rem; min-width: 50%; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: var(--soft); white-space: nowrap; } td.num { text-align: right; white-space: nowrap;
     font-variant-numeric: tabular-nums; }
caption { caption-side: bottom; text-align: left; color: var(--muted); font-size: 0.8rem; padding-top: 4px; }
figure { margin: 1em 0; } figure svg { width: 100%; height: auto; max-width: 100%; }
figcaption { color: var(--muted); font-size: 0.85rem; }
.v-supported { color: #1a7f37; font-weight: 600; } .v-contradicted { color: #c62828; font-weight: 600; }
.v-partly-supported { color: #9a6700; font-weight: 600; } .v-inconclusive { color: #8250df; font-weight: 600; }
.v-not-measured { color: var(--muted); }
footer { color: var(--muted); font-size: 0.8rem; margin-top: 2em; }
@media (max-width: 600px) { main { padding: 10px; } body { font-size: 14px; } th, td { padding: 3px 5px; }
  table.stack, table.stack tbody, table.stack tr, table.stack td { display: block; width: 100%; }
  table.stack thead { display: none; } table.stack tr { border-bottom: 2px solid var(--line); padding: 6px 0; }
  table.stack td { border: none; padding: 1px 0; } table.stack td.num { text-align: left; }
  table.stack td::before { content: attr(data-label); display: block; font-size: 0.75rem; color: var(--muted); } }
"""


def render_html(title: str, blocks: list[Block], *, footer: str = "") -> str:
    anchors = [(b.anchor, b.text) for b in blocks if isinstance(b, Heading) and b.anchor]
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{escape(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>", "<main>",
             f"<h1>{escape(title)}</h1>"]
    if anchors:
        parts.append("<nav>" + "".join(f'<a href="#{escape(a)}">{escape(t)}</a>' for a, t in anchors) + "</nav>")
    for b in blocks:
        parts.append(_block(b))
    if footer:
        parts.append(f"<footer>{escape(footer)}</footer>")
    parts += ["</main>", "</body>", "</html>", ""]
    return "\n".join(parts)


def _block(b: Block) -> str:
    if isinstance(b, Heading):
        level = max(2, min(4, b.level))
        anchor = f' id="{escape(b.anchor)}"' if b.anchor else ""
        return f"<h{level}{anchor}>{escape(b.text)}</h{level}>"
    if isinstance(b, Para):
        cls = f' class="{b.tone}"' if b.tone else ""
        return f"<p{cls}>{escape(b.text)}</p>"
    if isinstance(b, Figure):
        return f"<figure>{b.svg}<figcaption>{escape(b.caption)}</figcaption></figure>"
    if isinstance(b, Table):
        head = "".join(f"<th>{escape(str(c))}</th>" for c in b.columns)
        rows = []
        for i, row in enumerate(b.rows):
            cells = []
            for j, v in enumerate(row):
                classes = [c for c in ("num" if j in b.numeric else "", b.styles.get((i, j), "")) if c]
                cls = f' class="{" ".join(classes)}"' if classes else ""
                label = f' data-label="{escape(str(b.columns[j]))}"' if b.stack and j < len(b.columns) else ""
                cells.append(f"<td{cls}{label}>{escape(str(v))}</td>")
            rows.append("<tr>" + "".join(cells) + "</tr>")
        cap = f"<caption>{escape(b.caption)}</caption>" if b.caption else ""
        table_cls = ' class="stack"' if b.stack else ""
        return (f'<div class="scroll"><table{table_cls}>{cap}<thead><tr>{head}</tr></thead><tbody>{"".join(rows)}'
                f"</tbody></table></div>")
    raise TypeError(f"unknown block {type(b).__name__}")
