"""Accessor methods that show the signature and docs of the function they call."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any


def forward(func: Callable[..., Any], *, as_keyword: str | None = None) -> Callable[..., Any]:
    """A method calling ``func(self._da, ...)`` (or ``func(..., as_keyword=self._da)``) whose
    ``help()``, ``inspect.signature`` and Jupyter Shift-Tab show ``func``'s own parameters
    and numpydoc: one source of truth, no ``**kwargs`` hiding them."""
    signature = inspect.signature(func)
    params = list(signature.parameters.values())
    if as_keyword is None:
        params = params[1:]  # the array

        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            return func(self._da, *args, **kwargs)
    else:
        params = [p for p in params if p.name != as_keyword]

        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            return func(*args, **{as_keyword: self._da}, **kwargs)

    method = functools.wraps(func)(method)
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    method.__signature__ = signature.replace(parameters=[self_param, *params])  # type: ignore[attr-defined]
    del method.__wrapped__  # inspect.signature would otherwise unwrap to func's own
    return method
