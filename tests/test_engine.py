"""The Gram engine's fast paths keep the answers: float16 products in float32 after removing
a reference row, one BLAS thread per dask worker thread, and the eigen step's LAPACK calls
without the GIL."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import scipy.linalg
import threadpoolctl

from pvx import _engine, _lapack


def as_bfloat16_in_float32(x: np.ndarray) -> np.ndarray:
    """float32 holding bfloat16 values (as pvx imports bf16 safetensors)."""
    bits = np.asarray(x, dtype=np.float32).view(np.uint32) & np.uint32(0xFFFF0000)
    return bits.view(np.float32)


@pytest.mark.parametrize("kind", ["float16", "bfloat16 in float32"])
def test_16_bit_gram_matches_float64_under_a_large_offset(kind, monkeypatch):
    rng = np.random.default_rng(0)
    offset = rng.standard_normal(2048) * 40.0  # residual-stream mean, far above the spread
    as_16_bit = (lambda v: v.astype(np.float16)) if kind == "float16" else as_bfloat16_in_float32
    x = as_16_bit(offset + rng.standard_normal((2, 50, 2048)))
    fast = []
    sixteen_bit = _engine._sixteen_bit
    monkeypatch.setattr(_engine, "_sixteen_bit", lambda a: fast.append(sixteen_bit(a)) or fast[-1])
    exact = np.einsum("lph,lqh->lpq", x.astype(np.float64), x.astype(np.float64))
    got = _engine._gram_kernel(x, x)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, exact, rtol=1e-6)
    # what the analyses use: the doubly centered Gram, where the offset has cancelled
    centered, exact_centered = _engine._double_center(got), _engine._double_center(exact)
    scale = np.abs(exact_centered).max()
    np.testing.assert_allclose(centered, exact_centered, atol=1e-4 * scale)
    other = as_16_bit(offset + rng.standard_normal((2, 30, 2048)))
    cross = np.einsum("lph,lqh->lpq", x.astype(np.float64), other.astype(np.float64))
    np.testing.assert_allclose(_engine._gram_kernel(x, other), cross, rtol=1e-6)
    assert fast and all(fast)  # the float32 products ran


@pytest.mark.parametrize("kind", ["float16", "bfloat16 in float32"])
@pytest.mark.parametrize("first", ["zeros", "outlier", "nan"])
def test_16_bit_cosines_keep_their_digits_when_the_first_persona_is_far_off(kind, first):
    """A zero placeholder or an outlier as the first persona: the rows less the reference
    must stay short, or float32 products lose the cosines' digits (2e-3 with the first row
    as the reference)."""
    rng = np.random.default_rng(4)
    direction = rng.standard_normal(1024)
    direction /= np.linalg.norm(direction)
    as_16_bit = (lambda v: v.astype(np.float16)) if kind == "float16" else as_bfloat16_in_float32
    x = 100 * direction + rng.standard_normal((60, 1024))
    x[0] = {"zeros": 0.0, "outlier": 30 * x[0], "nan": np.nan}[first]
    x = as_16_bit(x)[None]
    assert _engine._sixteen_bit(x[0][1:])
    rows = slice(1, None) if first == "nan" else slice(None)  # a NaN row is refused later
    exact = np.einsum("lph,lqh->lpq", x[:, rows].astype(np.float64), x[:, rows].astype(np.float64))
    got = _engine._gram_kernel(x, x)[:, rows, rows]

    def cosines(gram):
        centered = _engine._double_center(gram)[0]
        norms = np.sqrt(np.diagonal(centered))
        return centered / norms[:, None] / norms[None, :]

    np.testing.assert_allclose(cosines(got), cosines(exact), atol=2e-6)


@pytest.mark.parametrize("scale", [1e-25, 1e19])
def test_bfloat16_values_at_extreme_scales_take_the_float64_path(scale):
    """bfloat16 has float32's exponent range: float32 products would vanish or overflow."""
    rng = np.random.default_rng(2)
    x = as_bfloat16_in_float32(rng.standard_normal((1, 6, 256)) * scale)
    assert not _engine._sixteen_bit(x[0])
    exact = np.einsum("lph,lqh->lpq", x.astype(np.float64), x.astype(np.float64))
    np.testing.assert_allclose(_engine._gram_kernel(x, x), exact, rtol=1e-13)


@pytest.mark.parametrize(
    "damage, sixteen_bit",
    [
        (None, True),
        ("nan", False),
        ("inf", False),
        ("-inf", False),
        ("low bits of a later row", False),
        ("all zeros", False),
        ("one huge value", False),
    ],
)
def test_which_float32_values_take_the_16_bit_path(damage, sixteen_bit):
    x = as_bfloat16_in_float32(np.random.default_rng(5).standard_normal((8, 64)))
    if damage == "all zeros":
        x[:] = 0.0
    elif damage == "low bits of a later row":
        x[5, 3] = np.nextafter(x[5, 3], np.float32(np.inf))
    elif damage == "one huge value":
        x[6, 1] = as_bfloat16_in_float32(np.float32(2.0**41))
    elif damage is not None:
        x[7, 2] = float(damage)
    assert _engine._sixteen_bit(x) is sixteen_bit


def test_the_16_bit_path_is_chosen_per_layer():
    """Layers decide for themselves: numpy input and dask chunks of any layer grouping give
    the same Grams."""
    rng = np.random.default_rng(3)
    bf16 = as_bfloat16_in_float32(rng.standard_normal((30, 512)) + 20.0)
    full = (rng.standard_normal((30, 512)) + 20.0).astype(np.float32)
    both = np.stack([bf16, full])
    together = _engine._gram_kernel(both, both)
    np.testing.assert_array_equal(together[0], _engine._gram_kernel(bf16[None], bf16[None])[0])
    np.testing.assert_array_equal(together[1], _engine._gram_kernel(full[None], full[None])[0])


def test_full_precision_float32_gram_is_float64():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(512) * 40.0 + rng.standard_normal((2, 40, 512))).astype(np.float32)
    x[0, 3, 7] = np.nextafter(np.float32(x[0, 3, 7]), np.float32(np.inf))  # not bfloat16
    assert not _engine._sixteen_bit(x)
    exact = np.einsum("lph,lqh->lpq", x.astype(np.float64), x.astype(np.float64))
    np.testing.assert_allclose(_engine._gram_kernel(x, x), exact, rtol=1e-13)


def blas_threads() -> int:
    return max(i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas")


def blas_threads_seen_by_two_worker_threads() -> list[int]:
    """Two threads inside the limit at once; the first to enter leaves first, so the limit
    is restored by a thread that did not set it."""
    seen: list[int] = []
    barrier = threading.Barrier(2)
    first_in, first_left = threading.Event(), threading.Event()

    def task(first: bool):
        if not first:
            first_in.wait()
        with _engine.one_blas_thread:
            first_in.set()
            barrier.wait()  # both threads inside at once: the count must hold the limit
            seen.append(blas_threads())
            barrier.wait()
            if not first:
                first_left.wait()
        if first:
            first_left.set()

    threads = [threading.Thread(target=task, args=(i == 0,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return seen


def test_one_blas_thread_in_worker_threads_only():
    before = blas_threads()
    for _ in range(2):  # a second round: the threads of the first no longer exist
        assert blas_threads_seen_by_two_worker_threads() == [1, 1]
        assert blas_threads() == before  # restored by the last to leave
    with _engine.one_blas_thread:  # the main thread keeps every BLAS thread
        assert blas_threads() == before


def longest_stall(call) -> float:
    """The longest time another Python thread could not run while ``call`` ran, as a
    fraction of the call: about 1 if the call holds the GIL throughout."""
    started, stop, stamps = threading.Event(), threading.Event(), []

    def spin() -> None:
        started.set()
        while not stop.is_set():
            stamps.append(time.perf_counter())

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    started.wait()
    try:
        begin = time.perf_counter()
        call()
        end = time.perf_counter()
    finally:  # a call that raises must not leave the spinner running
        stop.set()
        spinner.join()
    inside = [t for t in stamps if begin < t < end]
    return float(np.diff([begin, *inside, end]).max() / (end - begin))


def test_eigen_step_lapack_matches_scipy_and_releases_the_gil():
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 300):
        a = rng.standard_normal((n, n + 5))
        k = a @ a.T
        lwork = max(1, int(scipy.linalg.lapack.dsytrd_lwork(n, lower=1)[0]))
        reduced, d, e, tau, _ = scipy.linalg.lapack.dsytrd(k.T, lower=1, lwork=lwork)
        packed, d_got, e_got, tau_got = _lapack.dsytrd_lower(k)
        np.testing.assert_array_equal(packed, reduced.T)
        np.testing.assert_array_equal(tau_got, tau)
        expected = scipy.linalg.eigvalsh_tridiagonal(d, e, lapack_driver="sterf")
        np.testing.assert_array_equal(_lapack.dsterf(d_got, e_got), expected)
        np.testing.assert_allclose(expected, np.linalg.eigvalsh(k), atol=1e-9 * expected[-1])
    # scipy.linalg.lapack's wrappers hold the GIL for the whole call, stalling every other
    # dask thread; these must not
    a = rng.standard_normal((1200, 1200))
    k = a @ a.T
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        assert longest_stall(lambda: scipy.linalg.lapack.dsytrd(k.T, lower=1)) > 0.5
        # best of three: a call that holds the GIL stalls the spinner every time, while the
        # OS can deschedule it once on a machine busy with other test workers
        assert min(longest_stall(lambda: _lapack.dsytrd_lower(k)) for _ in range(3)) < 0.5
        _, d, e, _ = _lapack.dsytrd_lower(k)
        assert min(longest_stall(lambda: _lapack.dsterf(d, e)) for _ in range(3)) < 0.5
    # ctypes checks nothing: shapes are checked before LAPACK sees the buffers
    with pytest.raises(ValueError, match="square matrix"):
        _lapack.dsytrd_lower(np.ones((3, 4)))
    with pytest.raises(ValueError, match="square matrix"):
        _lapack.dsytrd_lower(np.ones((2, 3, 3)))
    with pytest.raises(ValueError, match="off-diagonal of length 2"):
        _lapack.dsterf(np.ones(3), np.ones(1))


def test_condensed_distances_are_scipys_condensed_form_of_the_distances():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((30, 5))
    x[4] = x[9]  # a zero distance: rounding must not make it NaN
    gram = x @ x.T
    import scipy.spatial.distance

    got = _engine.condensed_distances(gram)
    np.testing.assert_allclose(got, scipy.spatial.distance.pdist(x), atol=1e-12)
    square = _engine._distance_kernel(gram)
    np.testing.assert_allclose(got, scipy.spatial.distance.squareform(square, checks=False))
    assert np.isfinite(got).all()


@pytest.mark.parametrize("n", [1, 2, 3, 255, 256, 257, 600])
def test_packed_triangles_unpack_to_the_same_symmetric_matrices(n):
    # sizes around the tiles the lower triangle is copied in
    rng = np.random.default_rng(n)
    square = rng.standard_normal((2, 3, n, n)).astype(np.float32)
    square += square.swapaxes(-1, -2)
    packed = _engine.pack_upper(square)
    assert packed.shape == (2, 3, n * (n + 1) // 2)
    np.testing.assert_array_equal(_engine.unpack_upper(packed, n), square)
