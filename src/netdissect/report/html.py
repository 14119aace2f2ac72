"""The report's HTML pages, from jinja2 templates shipped with the package (``templates/``).

Pages are self-contained apart from the image files beside them: styles and the script that sorts and filters the
unit table are inlined, nothing is fetched from a network, every link is relative (the report opens from disk).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import jinja2
import pandas as pd

TEMPLATES = Path(__file__).with_name("templates")


@dataclass(frozen=True)
class FigureLink:
    """A figure on a page: its PNG, its SVG (or None) and caption, paths relative to the page."""

    png: str
    svg: str | None
    caption: str


@dataclass
class Section:
    """A section of the overview for a further stage: text, figures, tables and links to its CSV files.

    Attributes:
        id: the HTML anchor.
        title: the heading.
        text: paragraphs.
        figures: the figures shown.
        tables: dicts with ``columns`` and ``rows`` (lists of cells).
        links: dicts with ``name`` and ``href``.
    """

    id: str
    title: str
    text: list[str] = field(default_factory=list)
    figures: list[FigureLink] = field(default_factory=list)
    tables: list[dict] = field(default_factory=list)
    links: list[dict] = field(default_factory=list)


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def render(template: str, **context) -> str:
    """Render one of the package's templates (``layer.html``, ``index.html``)."""
    return _environment().get_template(template).render(**context)


def table_of(frame: pd.DataFrame, formats: dict[str, str] | None = None) -> dict:
    """A table for a section: the columns and the rows as text, numbers formatted by column (``{:.3f}``), missing
    values as empty cells."""
    formats = formats or {}
    rows = [
        ["" if pd.isna(v) else formats[c].format(v) if c in formats else v for c, v in zip(frame.columns, row)]
        for row in frame.itertuples(index=False, name=None)
    ]
    return {"columns": list(frame.columns), "rows": rows}
