"""The HTML of a report: one self-contained page (inline CSS, images as base64 data URIs), no scripts."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence

CSS = """
body { font-family: 'DejaVu Sans', 'Liberation Sans', Helvetica, Arial, sans-serif; margin: 0; color: #1e1e23;
       background: #f3f4f6; }
header { background: #23263a; color: #fff; padding: 18px 32px 14px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header .sub { color: #c9cbe0; font-size: 13px; }
main { padding: 8px 24px 40px; }
section { background: #fff; border-radius: 8px; padding: 14px 20px 18px; margin: 16px 0;
          box-shadow: 0 1px 3px rgba(0,0,0,.08); }
h2 { font-size: 17px; margin: 2px 0 12px; color: #23263a; }
h3 { font-size: 14px; margin: 16px 0 6px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 4px 12px; border-bottom: 1px solid #e4e5ea; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f1f5; font-weight: 600; }
td.up { color: #1a9850; } td.down { color: #d73027; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
.charts figure { margin: 0; }
.charts img { max-width: 100%; border: 1px solid #e4e5ea; border-radius: 4px; }
.trajs { display: flex; flex-wrap: wrap; gap: 0 24px; }
.traj { border-top: 1px solid #e4e5ea; padding-top: 8px; margin-top: 10px; min-width: 0; max-width: 100%; }
.steps { display: flex; gap: 12px; overflow-x: auto; padding-bottom: 6px; }
.step { flex: none; width: 610px; }
.step img { width: 100%; border-radius: 4px; display: block; margin: 6px 0; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 9px; font-size: 12px; color: #fff;
         font-weight: 600; margin-left: 6px; }
.ok { background: #1a9850; } .bad { background: #d73027; } .unknown { background: #6e6e78; }
.note { color: #6e6e78; font-size: 12px; }
pre { background: #f6f7f9; padding: 8px; border-radius: 4px; font-size: 12px; overflow-x: auto; }
details summary { cursor: pointer; font-size: 13px; color: #3b4a9c; }
a { color: #3b4a9c; }
"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def image(png: bytes, alt: str, css_class: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    klass = f' class="{css_class}"' if css_class else ""
    return f'<img{klass} alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def number(value) -> str:
    """A metric for a table: 4 significant digits, integers as integers, n/a for what is missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e9):
        return f"{int(value)}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return esc(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], raw: bool = False) -> str:
    """A table; cells are escaped unless `raw` (cells already HTML, e.g. `<td class=...>` built by the caller)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(c if raw and c.startswith("<td") else f"<td>{c if raw else esc(c)}</td>" for c in row)
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def badge(ok: bool | None, yes: str = "success", no: str = "failure") -> str:
    if ok is None:
        return '<span class="badge unknown">not judged</span>'
    return f'<span class="badge ok">{esc(yes)}</span>' if ok else f'<span class="badge bad">{esc(no)}</span>'


def section(title: str, body: str, anchor: str = "") -> str:
    ident = f' id="{esc(anchor)}"' if anchor else ""
    return f"<section{ident}><h2>{esc(title)}</h2>{body}</section>"


def page(title: str, subtitle: str, sections: Sequence[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{esc(title)}</h1><div class=\"sub\">{esc(subtitle)}</div></header>"
            f"<main>{''.join(sections)}</main></body></html>\n")
