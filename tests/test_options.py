"""pvx.set_options: progress bars for the computations pvx starts, and how to turn them off."""

from __future__ import annotations

import time

import dask
import pytest

import pvx
from pvx import options


def slow(x):
    time.sleep(1.3)  # longer than the bar's one-second delay
    return x


def test_set_options_globally_and_in_a_block():
    assert pvx.get_options() == {"progress": True}
    with pvx.set_options(progress=False):
        assert pvx.get_options()["progress"] is False
    assert pvx.get_options()["progress"] is True
    pvx.set_options(progress=False)
    try:
        assert pvx.get_options()["progress"] is False
    finally:
        pvx.set_options(progress=True)
    with pytest.raises(
        ValueError, match=r"unknown option\(s\) \['colour'\]; pvx has \['progress'\]"
    ):
        pvx.set_options(colour=True)
    with pytest.raises(TypeError, match="needs True or False"):
        pvx.set_options(progress="yes")
    assert pvx.get_options()["progress"] is True


def test_a_long_computation_shows_a_bar_unless_switched_off(capsys):
    lazy = dask.delayed(slow)(1)
    assert options.compute(lazy, description="pvx: testing") == (1,)
    assert "pvx: testing" in capsys.readouterr().err
    with pvx.set_options(progress=False):
        assert options.compute(lazy, description="pvx: testing") == (1,)
    assert "pvx: testing" not in capsys.readouterr().err
    # a short one shows nothing (the bar waits a second)
    assert options.compute(dask.delayed(int)(2), description="pvx: testing") == (2,)
    assert "pvx: testing" not in capsys.readouterr().err
