"""One self-contained HTML report from sections of text, metric tables and PNG pictures."""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Figure:
    """A PNG picture and the sentence printed under it: what it shows and what to look for."""

    path: Path
    caption: str


@dataclass
class Section:
    """One part of a report: a title, a paragraph, a table of metrics and pictures with captions."""

    title: str
    text: str = ""
    metrics: dict[str, float | str] = field(default_factory=dict)
    images: list[Figure] = field(default_factory=list)
    seconds: float = 0.0


def _metric_table(metrics: dict) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{v:.4g}</td></tr>" if isinstance(v, float)
        else f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in metrics.items())
    return f"<table>{rows}</table>" if rows else ""


def _image(figure: Figure) -> str:
    data = base64.b64encode(Path(figure.path).read_bytes()).decode()
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(figure.caption)}">'
            f"<figcaption>{html.escape(figure.caption)} <span class='file'>({html.escape(Path(figure.path).name)})"
            "</span></figcaption></figure>")


def write_report(sections: list[Section], path: str | Path, title: str = "deepbio tour", note: str = "") -> Path:
    """Write an HTML page (images embedded, so it opens anywhere) and return its path; `note` goes under the title."""
    body = "".join(
        f"<section><h2>{html.escape(s.title)}</h2>"
        + (f"<p class='time'>{s.seconds:.1f} s</p>" if s.seconds else "")
        + f"<p>{html.escape(s.text)}</p>{_metric_table(s.metrics)}{''.join(_image(i) for i in s.images)}</section>"
        for s in sections)
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
             "table{border-collapse:collapse;margin:.5em 0}td{border:1px solid #ccc;padding:2px 8px}"
             "img{max-width:100%;border:1px solid #eee}figure{margin:.5em 0}.time,.file,.note{color:#888}")
    note_html = f"<p class='note'>{html.escape(note)}</p>" if note else ""
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{note_html}{body}</body></html>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    return path
