"""The examples in pvx's docstrings run, and show what they print (numpydoc ``Examples``)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import pvx

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(pvx.__path__, prefix="pvx.")
    if not info.name.rsplit(".", 1)[-1].startswith("__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    failures, _ = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert failures == 0, f"{failures} docstring example(s) of {name} failed (output above)"
