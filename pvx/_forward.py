"""Accessor methods that show the signature and docs of the function they call."""

from __future__ import annotations

import functools
import importlib
import inspect
import types
from collections.abc import Callable
from typing import Any


def forward(func: Callable[..., Any] | str, *, as_keyword: str | None = None) -> Callable[..., Any]:
    """A method calling ``func(self._da, ...)`` (or ``func(..., as_keyword=self._da)``) whose
    ``help()``, ``inspect.signature`` and Jupyter Shift-Tab show ``func``'s own parameters
    and numpydoc: one source of truth, no ``**kwargs`` hiding them.

    ``func`` may be named as ``"module:function"``: its module is then imported on the
    method's first use (:class:`LazyForward`), so registering an accessor is cheap.
    """
    if isinstance(func, str):
        return LazyForward(func, as_keyword=as_keyword)  # type: ignore[return-value]
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


class LazyForward:
    """:func:`forward` of a function named ``"module:function"``, built on first access.

    ``import pvx`` registers ``da.pv`` without importing scipy, dask, zarr and the rest
    (``pvx explore`` serves its page meanwhile); ``PvAccessor.cosine`` and
    ``da.pv.cosine`` are the forwarded method itself, with its signature and docs.
    """

    def __init__(self, target: str, *, as_keyword: str | None = None) -> None:
        self.target = target
        self.as_keyword = as_keyword
        self._method: Callable[..., Any] | None = None

    def method(self) -> Callable[..., Any]:
        if self._method is None:
            module, _, name = self.target.partition(":")
            func = getattr(importlib.import_module(module), name)
            self._method = forward(func, as_keyword=self.as_keyword)
        return self._method

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        method = self.method()
        return method if instance is None else types.MethodType(method, instance)
