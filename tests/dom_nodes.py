"""A MiniWoB++ DOM node as the `miniwob` package's JSON gives it, for tests that build pages without a browser."""

from __future__ import annotations


def dom_node(ref, tag, left, top, width, height, text=None, children=(), **extra) -> dict:
    raw = {"ref": ref, "tag": tag, "left": left, "top": top, "width": width, "height": height,
           "children": list(children), **extra}
    if text is not None:
        raw["text"] = text
    return raw
