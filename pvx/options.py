"""pvx's settings: ``pvx.set_options(progress=False)``, globally or in a ``with`` block.

Like :func:`xarray.set_options`: the settings are process-wide, read by pvx where it starts
long work (computations, UMAP's first compile), never inside kernels.

Examples
--------
>>> import pvx
>>> with pvx.set_options(progress=False):
...     pvx.get_options()["progress"]
False
>>> pvx.get_options()["progress"]
True
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["compute", "get_options", "set_options"]

_OPTIONS: dict[str, Any] = {
    # progress bars for the computations pvx starts itself (tqdm: a widget in Jupyter, text
    # in a terminal), shown once they have run for a second
    "progress": True,
}


class set_options:
    """Change pvx's settings, for the process or (as a context manager) for a block.

    Parameters
    ----------
    progress : bool
        Show a progress bar while pvx computes something itself (``da.pv.plot.*``,
        ``pvx analyze``) for more than a second. Default ``True``.
    """

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise ValueError(
                f"set_options() got unknown option(s) {unknown}; pvx has {sorted(_OPTIONS)}"
            )
        for name, value in options.items():
            if not isinstance(value, bool):
                raise TypeError(f"set_options({name}=...) needs True or False, got {value!r}")
        self._previous = {name: _OPTIONS[name] for name in options}
        _OPTIONS.update(options)

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        _OPTIONS.update(self._previous)


def get_options() -> dict[str, Any]:
    """A copy of pvx's current settings."""
    return dict(_OPTIONS)


def _local_scheduler() -> bool:
    try:
        from distributed import get_client

        get_client()
    except (ImportError, ValueError):
        return True
    return False  # a distributed client has its own dashboard


@contextlib.contextmanager
def _progress_bar(description: str) -> Iterator[None]:
    if not (_OPTIONS["progress"] and _local_scheduler()):
        yield
        return
    from tqdm.auto import tqdm
    from tqdm.dask import TqdmCallback

    class Progress(TqdmCallback):  # type: ignore[misc]
        def _finish(self, *args: Any, **kwargs: Any) -> None:
            # a computation that fails before its first task has no bar: tqdm's own _finish
            # would raise AttributeError and hide the computation's error
            if hasattr(self, "pbar"):
                super()._finish(*args, **kwargs)

    with Progress(tqdm_class=tqdm, desc=description, delay=1.0, unit="task", leave=False):
        yield


def compute(*objs: Any, description: str = "pvx") -> tuple[Any, ...]:
    """``dask.compute(*objs)`` (shared tasks run once) with a progress bar (see
    :class:`set_options`)."""
    import dask

    with _progress_bar(description):
        return tuple(dask.compute(*objs))
