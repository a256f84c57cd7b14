"""Writing Plotly figures as offline HTML (plotly.js embedded or beside the pages, never a
CDN), and the pages of ``pvx analyze``'s report."""

from __future__ import annotations

import datetime
import html
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pvx.views._common import _esc

if TYPE_CHECKING:
    import plotly.graph_objects as go
    import xarray as xr


def write_html(
    fig: go.Figure,
    path: str | os.PathLike[str],
    *,
    plotlyjs: str = "embed",
    title: str | None = None,
    **kwargs: Any,
) -> Path:
    """Write a figure as a self-contained HTML page that works offline.

    Parameters
    ----------
    fig : plotly.graph_objects.Figure
        The figure.
    path : str or path-like
        The ``.html`` file to write (parent directories are created).
    plotlyjs : {"embed", "directory"}
        ``"embed"`` puts plotly.js inside the page (one file, about 5 MB more);
        ``"directory"`` references ``plotly.min.js`` beside the page and writes that file
        once, so many pages in one folder share it. Never a CDN.
    title : str, optional
        The page's ``<title>`` (escaped); default: the figure title.
    **kwargs
        Passed to :meth:`plotly.graph_objects.Figure.write_html` (e.g. ``auto_play``).

    Returns
    -------
    pathlib.Path
        The written page.
    """
    if plotlyjs not in ("embed", "directory"):
        raise ValueError(
            f"write_html() got plotlyjs={plotlyjs!r}; choose 'embed' or 'directory' (pages "
            "never load plotly.js from a CDN, so they work offline)"
        )
    for key in ("include_plotlyjs", "include_mathjax", "file"):
        if key in kwargs:
            raise TypeError(f"write_html() sets {key} itself; use plotlyjs= instead")
    import plotly.io
    import plotly.offline

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {"displaylogo": False, "responsive": True, **kwargs.pop("config", {})}
    kwargs.setdefault("auto_play", False)
    text = plotly.io.to_html(
        fig,
        include_plotlyjs=True if plotlyjs == "embed" else "plotly.min.js",
        include_mathjax=False,
        full_html=True,
        config=config,
        **kwargs,
    )
    text = _BDATA.sub(_unescape_bdata, text)
    if title is None and fig.layout.title.text:
        # the figure's title is Plotly's markup (<b>, <br>, entities): its text, escaped
        shown = re.sub(r"<[^>]*>", " ", str(fig.layout.title.text))
        title = " ".join(html.unescape(shown).split())
    if title is not None:
        text = text.replace("<head>", f"<head><title>{_esc(title)}</title>", 1)
    path.write_text(text, encoding="utf-8")
    if plotlyjs == "directory":
        write_plotly_bundle(path.parent)
    return path


def html_div(fig: go.Figure, *, div_id: str | None = None, **kwargs: Any) -> str:
    """The figure as an HTML ``<div>`` (no plotly.js), to compose pages of several figures.

    The page must load plotly.js itself (e.g. ``<script src="plotly.min.js">`` beside it, as
    :func:`write_html` with ``plotlyjs="directory"`` writes). Typed arrays stay compact, as in
    :func:`write_html`.

    Parameters
    ----------
    fig : plotly.graph_objects.Figure
        The figure.
    div_id : str, optional
        The ``id`` of the figure's ``<div>``.
    **kwargs
        Passed to :func:`plotly.io.to_html`.

    Returns
    -------
    str
        ``<div>...</div>`` with the figure's data and its ``Plotly.newPlot`` script.
    """
    import plotly.io

    config = {"displaylogo": False, "responsive": True, **kwargs.pop("config", {})}
    kwargs.setdefault("auto_play", False)
    div = plotly.io.to_html(
        fig, include_plotlyjs=False, full_html=False, div_id=div_id, config=config, **kwargs
    )
    return _BDATA.sub(_unescape_bdata, div)


# Plotly escapes "/" as "\u002f" (6 bytes) everywhere in the page's JSON, so it can never close
# the <script>. Inside base64 typed arrays ("bdata") that costs up to 40% more bytes; base64
# has no "<", so "/" is safe there and is restored.
_BDATA = re.compile(r'"bdata":"([A-Za-z0-9+=\\]*)"')


def _unescape_bdata(match: re.Match[str]) -> str:
    return '"bdata":"' + match.group(1).replace("\\u002f", "/") + '"'


# --------------------------------------------------------------------------- report pages


def write_page(path: Path, title: str, description: str, figures: list[Any]) -> None:
    """One report page of figures, loading ``plotly.min.js`` from beside it (written once)."""
    body = [html_div(fig, div_id=f"figure-{i}") for i, fig in enumerate(figures)]
    text = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>pvx: {html.escape(title)}</title>
<script src="plotly.min.js"></script>
<style>body{{font-family:system-ui,sans-serif;margin:1.5em;}} .figure{{margin-bottom:2em;}}</style>
</head><body>
<p><a href="index.html">&larr; all views</a></p>
<h1>{html.escape(title)}</h1><p>{html.escape(description)}</p>
{"".join(f'<div class="figure">{div}</div>' for div in body)}
</body></html>
"""
    path.write_text(text, encoding="utf-8")
    write_plotly_bundle(path.parent)


def write_plotly_bundle(folder: Path) -> None:
    """``plotly.min.js`` in ``folder``, for the pages beside it: written once, and again
    when the file there is not this plotly's (another version's, or a damaged one)."""
    import plotly.offline

    bundle = folder / "plotly.min.js"
    js = plotly.offline.get_plotlyjs().encode("utf-8")
    if not bundle.exists() or bundle.stat().st_size != len(js) or bundle.read_bytes() != js:
        bundle.write_bytes(js)


def _left_out_text(left_out: dict[str, list[str]]) -> str:
    """Which variants' personas the analyses leave out (the variants join on persona ids)."""

    def short(text: str) -> str:
        return text if len(text) <= 40 else text[:39] + "\u2026"

    parts = [
        f"{len(ids)} of {short(variant)} ({', '.join(short(i) for i in ids[:5])}"
        + (", ..." if len(ids) > 5 else "")
        + ")"
        for variant, ids in left_out.items()
    ]
    return "; ".join(parts) + ": not in every variant (all ids in run.json)"


def write_index(
    out: Path,
    settings: dict[str, Any],
    results: xr.DataTree,
    pages: list[tuple[str, str, str]],
    *,
    results_name: str,
) -> None:
    """The report's ``index.html``: the run's settings and a link to each page."""
    # recorded by the run; results of older runs: the first with a persona dim (not probe's)
    sizes = (node.to_dataset().sizes.get("persona") for node in results.children.values())
    n_persona = settings.get("personas") or next((n for n in sizes if n), "?")
    rows = [
        ("store", settings["store"]),
        ("model", settings["model"]),
        ("mask strategy", settings["mask_strategy"]),
        ("variants", ", ".join(settings["variants"])),
        (
            "personas",
            f"{n_persona}" + (" (baseline included)" if settings["include_baseline"] else ""),
        ),
        *(
            [("left out", _left_out_text(settings["personas_left_out"]))]
            if settings.get("personas_left_out")
            else []
        ),
        ("layers", f"{len(settings['layers'])}: {settings['layers']}"),
        ("colours", ", ".join(settings["colors"]) or "none"),
        ("k-means clusters", settings["n_clusters"] or "-"),
        (
            "numbers",
            f'<a href="{results_name}">{results_name}</a> (xr.open_datatree(..., engine="zarr"))',
        ),
        ("written", datetime.datetime.now().isoformat(timespec="seconds")),
    ]
    table = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{v if k == 'numbers' else html.escape(str(v))}</td></tr>"
        for k, v in rows
    )
    links = "".join(
        f'<li><a href="{href}">{html.escape(title)}</a>: {html.escape(text)}</li>'
        for href, title, text in pages
    )
    (out / "index.html").write_text(
        f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>pvx report</title>
<style>body{{font-family:system-ui,sans-serif;margin:1.5em;}}
th{{text-align:left;padding-right:1em;}}</style>
</head><body><h1>pvx report</h1>
<table>{table}</table>
<h2>Views</h2><ul>{links}</ul>
</body></html>
""",
        encoding="utf-8",
    )
