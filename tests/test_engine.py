"""The one-pass engine end to end (evaluate_files on .npy files) against the numpy references."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from sslcheck.engine import Settings, evaluate_files
from sslcheck.errors import InputError, UsageError
from sslcheck.losses.flavors import FLAVORS, LOSSES, params_dict, resolve_params
from sslcheck.result import Result
from tests.data import save_pair, views
from tests.oracles import numpy_reference as ref

RTOL = 1e-10
ALL_LOSSES = ("vicreg", "barlow", "nt_xent")


def views_engine(n: int, d: int, seed: int, scale: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """Column stds ~ `scale` < 1 so VICReg's hinge is active (no zero terms)."""
    return views(n, d, seed, scale=scale, spread=0.3)


class Runner:
    """Writes views to .npy files and evaluates them; every result must dump as strict JSON."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.count = 0

    def files(self, za: np.ndarray, zb: np.ndarray) -> tuple[str, str]:
        self.count += 1
        return save_pair(self.tmp_path, za, zb, str(self.count))

    def __call__(self, za: np.ndarray, zb: np.ndarray, **settings: object) -> Result:
        settings.setdefault("dtype", "float64")
        result = evaluate_files(*self.files(za, zb), Settings(**settings))  # type: ignore[arg-type]
        json.dumps(result.to_dict(), allow_nan=False)
        return result


@pytest.fixture
def run(tmp_path: Path) -> Runner:
    return Runner(tmp_path)


def batches(n: int, bsz: int, drop_last: bool) -> list[slice]:
    out = []
    for start in range(0, n, bsz):
        if n - start < bsz and drop_last:
            break
        out.append(slice(start, min(start + bsz, n)))
    return out


def assert_close(got: float | None, want: float, rtol: float = RTOL, what: object = "") -> None:
    assert got is not None, what
    assert got == pytest.approx(want, rel=rtol, abs=1e-14), what


# --- whole set and per batch against the references ------------------------------------------


# the last two are on the Gram route (D >= 4B: B x B Grams, no per-batch D x D products)
SHAPES = [(50, 6, 8), (30, 24, 10), (300, 12, 64), (200, 100, 64), (126, 48, 8), (95, 40, 10)]


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("n,d,bsz", SHAPES)
def test_whole_set_and_per_batch_equal_the_references(run: Runner, flavor: str, n: int, d: int, bsz: int) -> None:
    za, zb = views_engine(n, d, n + d)
    for drop_last in (True, False):
        result = run(za, zb, flavor=flavor, batch_size=bsz, drop_last=drop_last, chunk_rows=2 * bsz)
        slices = batches(n, bsz, drop_last)
        assert len(slices) == (n // bsz if drop_last else math.ceil(n / bsz))
        for loss in ALL_LOSSES:
            lr = result.losses[loss]
            p = resolve_params(loss, flavor)
            assert lr.flavor == flavor and lr.params == params_dict(p)
            want = ref.reference(loss, za, zb, p)
            for term in LOSSES[loss].terms:
                assert_close(lr.whole_set[term], want[term], what=(loss, term))
            assert lr.n_batches == len(slices)
            per = [ref.reference(loss, za[s], zb[s], p) for s in slices]
            for term in LOSSES[loss].terms:
                values = np.array([r[term] for r in per])
                summary = lr.per_batch[term]
                assert_close(summary.mean, values.mean(), what=(loss, term, "mean"))
                assert summary.std == pytest.approx(values.std(), rel=1e-8, abs=1e-13), (loss, term)
                assert_close(summary.min, values.min(), what=(loss, term, "min"))
                assert_close(summary.max, values.max(), what=(loss, term, "max"))
                np.testing.assert_allclose(lr.per_batch_values[term], values, rtol=RTOL, atol=1e-14)


@pytest.mark.parametrize("batch_size", [None, 40, 1000])
def test_one_batch_of_all_rows_is_the_whole_set(run: Runner, batch_size: int | None) -> None:
    za, zb = views_engine(40, 5, 1)
    result = run(za, zb, batch_size=batch_size, chunk_rows=7)
    assert result.settings["batch_size"] == 40
    for loss in ALL_LOSSES:
        lr = result.losses[loss]
        assert lr.n_batches == 1
        want = ref.reference(loss, za, zb, resolve_params(loss, "paper"))
        for term in LOSSES[loss].terms:
            s = lr.per_batch[term]
            assert_close(lr.whole_set[term], want[term], what=(loss, term))
            assert s.mean == s.min == s.max == lr.whole_set[term]
            assert s.std == 0.0


def test_whole_set_differs_from_per_batch_mean(run: Runner) -> None:
    """A sanity check that the two are not the same number (Barlow's off-diagonal noise floor)."""
    za, zb = views_engine(64, 12, 2)
    lr = run(za, zb, batch_size=8).losses["barlow"]
    assert lr.per_batch["off_diagonal"].mean > 2 * lr.whole_set["off_diagonal"]


# --- invariances --------------------------------------------------------------------------------


def all_values(result: Result) -> dict[tuple[str, str, str, str], float | None]:
    """Every whole-set value and per-batch summary, keyed by (loss, flavor, where, term)."""
    out: dict[tuple[str, str, str, str], float | None] = {}
    for loss, top in result.losses.items():
        for fl, lr in (top.by_flavor or {top.flavor: top}).items():
            for term in LOSSES[loss].terms:
                out[(loss, fl, "whole", term)] = lr.whole_set[term]
                s = lr.per_batch[term]
                for stat in ("mean", "std", "min", "max"):
                    out[(loss, fl, stat, term)] = getattr(s, stat)
    return out


def assert_same(a: Result, b: Result, rtol: float, keys: object = None) -> None:
    va, vb = all_values(a), all_values(b)
    assert va.keys() == vb.keys()
    for k in va if keys is None else keys:  # type: ignore[union-attr]
        if va[k] is None or vb[k] is None:
            assert va[k] is vb[k] is None, k
        else:
            assert vb[k] == pytest.approx(va[k], rel=rtol, abs=1e-13), k


@pytest.mark.parametrize(("batch_size", "n"), [(None, 45), (6, 45), (64, 300)])
def test_chunk_rows_changes_nothing(run: Runner, batch_size: int | None, n: int) -> None:
    za, zb = views_engine(n, 7, 3)
    base = run(za, zb, batch_size=batch_size, chunk_rows=100_000, flavor="all")
    for chunk_rows in (1, 5, 13, 130):
        assert_same(base, run(za, zb, batch_size=batch_size, chunk_rows=chunk_rows, flavor="all"), 1e-12)


def test_row_permutation_leaves_the_whole_set_unchanged(run: Runner) -> None:
    za, zb = views_engine(48, 6, 4)
    perm = np.random.default_rng(0).permutation(48)
    a = run(za, zb, batch_size=None, chunk_rows=10, flavor="all")
    b = run(za[perm], zb[perm], batch_size=None, chunk_rows=10, flavor="all")
    assert_same(a, b, 1e-12, keys=[k for k in all_values(a) if k[2] == "whole"])


def test_swapping_views(run: Runner) -> None:
    """VICReg (every term), Barlow with a proper standardisation (c -> c^T) and NT-Xent (rows
    relabelled) are symmetric in the views; quadra's Barlow bug reads only zb, so it is not."""
    za, zb = views_engine(40, 6, 5)
    a = run(za, zb, batch_size=8, flavor="all")
    b = run(zb, za, batch_size=8, flavor="all")
    va, vb = all_values(a), all_values(b)
    symmetric = [k for k in va if not (k[0] == "barlow" and k[1] == "quadra")]
    assert_same(a, b, 1e-10, keys=symmetric)
    quadra = [k for k in va if k[0] == "barlow" and k[1] == "quadra" and k[2] in ("whole", "mean")]
    assert all(abs(va[k] - vb[k]) > 1e-6 * abs(va[k]) for k in quadra)  # type: ignore[operator]


def test_a_column_offset_leaves_centred_terms_unchanged(run: Runner) -> None:
    za, zb = views_engine(40, 6, 6)
    offset = 1e4 * (1 + np.arange(6) / 6)
    a = run(za, zb, batch_size=8, flavor="all", chunk_rows=16)
    b = run(za + offset, zb + offset, batch_size=8, flavor="all", chunk_rows=16)
    va, vb = all_values(a), all_values(b)
    centred = [k for k in va if k[0] == "barlow" or (k[0] == "vicreg" and k[3] in ("variance", "covariance"))]
    assert_same(a, b, 1e-9, keys=[k for k in centred if k[2] != "std"])
    for k in centred:
        if k[2] == "std":  # the spread of per-batch values, measured against their mean
            assert abs(vb[k] - va[k]) < 1e-9 * abs(va[(k[0], k[1], "mean", k[3])])  # type: ignore[operator]


def test_float32_per_batch_with_a_dominant_column(run: Runner) -> None:
    """float32 batches on the Gram route (D > 4B/3) with one column 1000 x the others: VICReg's
    covariance stays at float32 accuracy (the Gram identity alone would be ~1e-2 off)."""
    za, zb = views_engine(64, 32, 14)
    za[:, 0] *= 1e3
    zb[:, 0] *= 1e3
    lr = run(za.astype(np.float32), zb.astype(np.float32), batch_size=16, dtype="float32").losses["vicreg"]
    a32, b32 = za.astype(np.float32).astype(np.float64), zb.astype(np.float32).astype(np.float64)
    want = [ref.vicreg(a32[s], b32[s])["covariance"] for s in batches(64, 16, True)]
    np.testing.assert_allclose(lr.per_batch_values["covariance"], want, rtol=1e-5)


def test_float32_barlow_on_the_gram_route(run: Runner) -> None:
    """float32 batches with D = 4B (B x B Grams, the whole-set cross moment from chunk products)
    and nearly identical views: Barlow's per-batch terms and whole-set value stay at float32
    accuracy of the float64 reference on the same rounded inputs."""
    za, zb = views_engine(256, 64, 15)
    zb = za + 1e-2 * np.random.default_rng(15).standard_normal(za.shape)
    a32, b32 = za.astype(np.float32), zb.astype(np.float32)
    lr = run(a32, b32, batch_size=16, chunk_rows=64, dtype="float32").losses["barlow"]
    a64, b64 = a32.astype(np.float64), b32.astype(np.float64)
    p = resolve_params("barlow", "paper")
    per = [ref.reference("barlow", a64[s], b64[s], p) for s in batches(256, 16, True)]
    whole = ref.reference("barlow", a64, b64, p)
    off = np.array([r["off_diagonal"] for r in per])
    np.testing.assert_allclose(lr.per_batch_values["off_diagonal"], off, rtol=2e-4)
    assert lr.whole_set["off_diagonal"] == pytest.approx(whole["off_diagonal"], rel=2e-4)
    # on_diagonal = sum (1 - c_ii)^2 with c_ii ~ 1: an error e in c_ii moves it by 2 |1 - c_ii| e,
    # |1 - c_ii| ~ sqrt(on_diagonal / D), and e ~ 10 float32 eps
    on = np.array([r["on_diagonal"] for r in per])
    bound = 2 * 64 * np.sqrt(on / 64) * 10 * np.finfo(np.float32).eps
    assert (np.abs(lr.per_batch_values["on_diagonal"] - on) <= bound).all()
    assert abs(lr.whole_set["on_diagonal"] - whole["on_diagonal"]) <= 2 * 64 * np.sqrt(whole["on_diagonal"] / 64) * 1e-6


@pytest.mark.parametrize("noise", [1e-2, 1e-3])
def test_float32_whole_set_invariance_of_nearly_identical_views(run: Runner, noise: float) -> None:
    """zb = za + tiny noise (e.g. the same inputs embedded twice): the whole-set invariance must not
    come from tr(M_aa) + tr(M_bb) - 2 tr(M_ab), which cancels to ~1e-7 / (noise^2) in float32."""
    rng = np.random.default_rng(15)
    za = (rng.standard_normal((512, 16)) + 3.0).astype(np.float32)
    zb = (za + noise * rng.standard_normal(za.shape)).astype(np.float32)
    lr = run(za, zb, batch_size=128, dtype="float32", chunk_rows=128).losses["vicreg"]
    want = ((za.astype(np.float64) - zb) ** 2).mean()
    assert lr.whole_set["invariance"] == pytest.approx(want, rel=1e-5)
    assert lr.per_batch["invariance"].mean == pytest.approx(want, rel=1e-5)


# --- whole-set contrastive work limit -----------------------------------------------------


def test_nt_xent_whole_set_skipped_above_the_work_limit(run: Runner) -> None:
    za, zb = views_engine(40, 8, 7)
    result = run(za, zb, batch_size=8, contrastive_work_limit=(2 * 40) ** 2 * 8 - 1)
    lr = result.losses["nt_xent"]
    assert lr.whole_set == {"total": None}
    assert lr.whole_set_note and "not computed" in lr.whole_set_note
    assert lr.n_batches == 5 and lr.per_batch["total"].mean is not None
    assert "whole_set_note" in result.to_dict()["losses"]["nt_xent"]
    assert result.losses["vicreg"].whole_set["total"] is not None  # moment losses are unaffected

    exact = run(za, zb, batch_size=8, contrastive_work_limit=(2 * 40) ** 2 * 8)
    want = ref.nt_xent(za, zb, tau=0.1, reduction="sum_directions", normalize="tf")["total"]
    assert_close(exact.losses["nt_xent"].whole_set["total"], want)
    assert exact.losses["nt_xent"].whole_set_note is None

    one = run(za, zb, batch_size=None, contrastive_work_limit=100).losses["nt_xent"]
    assert one.whole_set == {"total": None} and one.n_batches == 0
    assert one.per_batch["total"].mean is None


def test_work_limit_note_names_the_configured_limit(run: Runner) -> None:
    za, zb = views_engine(40, 8, 7)
    note = run(za, zb, batch_size=8, contrastive_work_limit=1000).losses["nt_xent"].whole_set_note
    assert note is not None and "2^38" not in note


# --- flavors ------------------------------------------------------------------------------


def test_flavor_all_fills_by_flavor(run: Runner) -> None:
    za, zb = views_engine(36, 6, 8)
    result = run(za, zb, batch_size=12, flavor="all")
    out = result.to_dict()
    assert "barlow/quadra" in " ".join(result.warnings)
    for loss in ALL_LOSSES:
        top = result.losses[loss]
        assert top.flavor == "paper"
        assert set(top.by_flavor) == set(FLAVORS)
        assert set(out["losses"][loss]["by_flavor"]) == set(FLAVORS)
        for fl, lr in top.by_flavor.items():
            p = resolve_params(loss, fl)
            assert lr.flavor == fl and lr.params == params_dict(p)
            assert out["losses"][loss]["by_flavor"][fl]["params"] == params_dict(p)
            want = ref.reference(loss, za, zb, p)
            for term in LOSSES[loss].terms:
                assert_close(lr.whole_set[term], want[term], what=(loss, fl, term))
                assert out["losses"][loss]["by_flavor"][fl]["whole_set"][term] == lr.whole_set[term]
    # the presets really differ where the flavor table says they do
    vic = result.losses["vicreg"].by_flavor
    assert vic["solo-learn"].whole_set["variance"] == pytest.approx(2 * vic["paper"].whole_set["variance"])


def test_flavor_all_per_batch_equals_each_flavor_alone(run: Runner) -> None:
    """Flavors that agree on a loss's parameters share one computation per batch (MMCR's six):
    every flavor's per-batch values must still be those of that flavor scored alone. D = 24 > 4B/3:
    the Gram route, whose per-view checks are cached across the flavors too."""
    za, zb = views_engine(48, 24, 10)
    both = run(za, zb, batch_size=12, losses=("all",), flavor="all")
    for fl in FLAVORS:
        alone = run(za, zb, batch_size=12, losses=("all",), flavor=fl)
        for loss, top in both.losses.items():
            got, want = top.by_flavor[fl].per_batch_values, alone.losses[loss].per_batch_values
            assert got.keys() == want.keys() and len(got), (loss, fl)
            for term in want:
                np.testing.assert_array_equal(got[term], want[term], err_msg=f"{loss} {fl} {term}")


def test_overrides_reach_every_value(run: Runner) -> None:
    za, zb = views_engine(30, 5, 9)
    overrides = {"vicreg": {"mu": "50"}, "nt_xent": {"tau": "0.3", "reduction": "mean"}}
    result = run(za, zb, batch_size=10, overrides=overrides)
    assert result.losses["vicreg"].params["mu"] == 50.0
    assert result.settings["overrides"] == overrides
    assert_close(result.losses["vicreg"].whole_set["total"], ref.vicreg(za, zb, mu=50.0)["total"])
    assert_close(
        result.losses["nt_xent"].whole_set["total"],
        ref.nt_xent(za, zb, tau=0.3, reduction="mean", normalize="tf")["total"],
    )


# --- errors -------------------------------------------------------------------------------


def test_nan_and_inf_are_input_errors(run: Runner) -> None:
    za, zb = views_engine(30, 4, 10)
    bad = za.copy()
    bad[7, 1] = np.nan
    bad[19, 0] = np.inf
    bad[19, 3] = -np.inf
    pa, pb = run.files(bad, zb)
    with pytest.raises(InputError) as err:
        evaluate_files(pa, pb, Settings(dtype="float64", batch_size=4, chunk_rows=8))
    msg = str(err.value)
    assert pa in msg and "3 NaN/Inf values" in msg and "row 7" in msg

    one = zb.copy()
    one[25, 2] = np.nan
    pa, pb = run.files(za, one)
    with pytest.raises(InputError, match=r"1 NaN/Inf value; the first in row 25") as err:
        evaluate_files(pa, pb, Settings(dtype="float64", batch_size=None))
    assert pb in str(err.value)


def test_bad_values_in_later_chunks_of_both_views(run: Runner) -> None:
    """Only chunks whose sum of squared differences is not finite are scanned value by value;
    every bad value after the first is still counted, in either view, in every later chunk."""
    za, zb = views_engine(100, 4, 12)
    za, zb = za.copy(), zb.copy()
    za[37, 1] = np.inf
    za[90, 0] = np.nan
    zb[64, 2] = -np.inf
    zb[65, :] = np.nan
    pa, pb = run.files(za, zb)
    for dtype in ("float32", "float64"):
        with pytest.raises(InputError, match=r"2 NaN/Inf values; the first in row 37") as err:
            evaluate_files(pa, pb, Settings(dtype=dtype, batch_size=8, chunk_rows=16))
        assert pa in str(err.value)
        with pytest.raises(InputError, match=r"5 NaN/Inf values; the first in row 64"):
            evaluate_files(pb, pb, Settings(dtype=dtype, batch_size=8, chunk_rows=16))


@pytest.mark.parametrize("losses", [("mmcr",), ("all",)])
def test_a_bad_value_reaches_no_loss(run: Runner, losses: tuple[str, ...]) -> None:
    """A chunk with a NaN is scanned before any batch of it is scored: MMCR's SVD failed on it
    with a LAPACK traceback when batches were scored first (found in review)."""
    za, zb = views_engine(600, 8, 14)
    za = za.copy()
    za[5, 2] = np.nan
    pa, pb = run.files(za, zb)
    with pytest.raises(InputError, match=r"1 NaN/Inf value; the first in row 5"):
        evaluate_files(pa, pb, Settings(losses=losses, batch_size=64))


def test_a_one_row_last_chunk_with_row_mean_losses(run: Runner) -> None:
    """N = 513 in 512-row chunks: the last chunk holds one row, which a Batch cannot (it needs
    2 rows); the row-mean losses still average every row (found in review)."""
    za, zb = views_engine(513, 6, 15)
    result = run(za, zb, losses=("negative_cosine", "byol"), batch_size=64, chunk_rows=512)
    ua = za / np.linalg.norm(za, axis=1, keepdims=True)
    ub = zb / np.linalg.norm(zb, axis=1, keepdims=True)
    cos = (ua * ub).sum(1)
    assert_close(result.losses["negative_cosine"].whole_set["total"], -cos.mean())
    assert_close(result.losses["byol"].whole_set["total"], (2 - 2 * cos).mean())


def test_values_whose_squares_overflow_are_an_input_error(run: Runner) -> None:
    """Finite float32 values near 1e20 overflow float32 second moments: a clear error that names
    the way out, never a NaN or a solver's traceback; in float64 the same file scores."""
    za, zb = views_engine(64, 6, 13)
    za = za.astype(np.float32)
    za[10] *= 1e20
    pa, pb = run.files(za, zb.astype(np.float32))
    with pytest.raises(
        InputError, match=r"values too large for float32: their second moments overflow \(use --dtype float64\)"
    ):
        evaluate_files(pa, pb, Settings(batch_size=16))
    result = evaluate_files(pa, pb, Settings(dtype="float64", batch_size=16))
    assert result.losses["vicreg"].whole_set["invariance"] == pytest.approx(
        ((za.astype(np.float64) - zb.astype(np.float32)) ** 2).mean(), rel=1e-12
    )


@pytest.mark.parametrize("view", ["za", "zb"])
def test_values_whose_squares_underflow_are_an_input_error(run: Runner, view: str) -> None:
    """A view scaled by 1e-30 has float32 squares of 0 (float32's smallest normal is 1.2e-38):
    every std had read 0, a "complete collapse" that is not in the data. A clear error naming the
    view and the way out; in float64 the same files score."""
    za, zb = views_engine(300, 6, 15)
    small = {"za": za * 1e-30, "zb": zb} if view == "za" else {"za": za, "zb": zb * 1e-30}
    pa, pb = run.files(small["za"].astype(np.float32), small["zb"].astype(np.float32))
    with pytest.raises(
        InputError, match=rf"{view}\d*\.npy: values too small for float32: .* underflow \(use --dtype float64\)"
    ):
        evaluate_files(pa, pb, Settings(batch_size=64))
    result = evaluate_files(pa, pb, Settings(dtype="float64", batch_size=64))
    ref = small[view].astype(np.float32).astype(np.float64).std(0, ddof=1).mean()
    assert result.diagnostics[view]["std_mean"] == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize(
    ("scale", "tiny_rows"),
    [(5e-19, slice(None)), (1e-15, slice(None)), (1e-30, slice(3000, None))],
)
def test_small_values_that_do_not_underflow_still_score(run: Runner, scale: float, tiny_rows: slice) -> None:
    """Not refused, with the float64 reference's std: 5e-19 (its float32 squares, 2.5e-37, are
    normal numbers), 1e-15, and a view whose first 3000 of 6000 rows are of normal size and the
    rest 1e-30 (its mean square is normal; rows outside the sample count too: review)."""
    za, zb = views_engine(6000, 6, 19)
    small = za.copy()
    small[tiny_rows] *= scale
    small = small.astype(np.float32)
    pa, pb = run.files(small, zb.astype(np.float32))
    result = evaluate_files(pa, pb, Settings(batch_size=64, losses=("vicreg",)))
    ref = small.astype(np.float64).std(0, ddof=1).mean()
    assert result.diagnostics["za"]["std_mean"] == pytest.approx(ref, rel=1e-4)


def test_a_group_of_chunks_whose_summed_products_overflow_is_an_input_error(run: Runner) -> None:
    """Chunk products are summed in float32 for up to 16 chunks before the float64 merge, so values
    whose one chunk's products fit (~1e38) but whose group's do not (~8e38, float32's largest is
    3.4e38) are refused as values too large for float32, with the way out, never a wrong number
    (found in review: the merge per chunk had taken them); in float64 they score."""
    rng = np.random.default_rng(14)
    z = rng.standard_normal((8 * 256, 4))
    za = (6e17 * z).astype(np.float32)
    zb = (6e17 * (z + 0.3 * rng.standard_normal(z.shape))).astype(np.float32)
    assert (za[:256].astype(np.float64) ** 2).sum(0).max() < 3.4e38 < (za.astype(np.float64) ** 2).sum(0).max()
    pa, pb = run.files(za, zb)
    settings = {"batch_size": 64, "chunk_rows": 256, "losses": ("vicreg",)}
    with pytest.raises(InputError, match=r"second moments overflow \(use --dtype float64\)"):
        evaluate_files(pa, pb, Settings(**settings))
    result = evaluate_files(pa, pb, Settings(dtype="float64", **settings))
    cov = np.cov(za.astype(np.float64), rowvar=False)
    assert result.diagnostics["za"]["std_mean"] == pytest.approx(np.sqrt(np.diag(cov)).mean(), rel=1e-12)


def test_keep_last_with_a_one_row_last_batch(run: Runner) -> None:
    za, zb = views_engine(17, 4, 11)
    with pytest.raises(InputError, match="1 row"):
        run(za, zb, batch_size=8, drop_last=False)
    assert run(za, zb, batch_size=8, drop_last=True).losses["vicreg"].n_batches == 2


@pytest.mark.parametrize("batch_size", [1, 0])
def test_batch_size_below_two(run: Runner, batch_size: int) -> None:
    za, zb = views_engine(10, 3, 12)
    with pytest.raises(UsageError):
        run(za, zb, batch_size=batch_size)


# --- strict JSON where a value is undefined ---------------------------------------------------


def test_constant_column_under_quadra_is_null_with_a_note(run: Runner) -> None:
    za, zb = views_engine(24, 5, 13)
    zb[:, 2] = 3.0  # quadra standardises zb with no eps: 0 / 0 in that column
    for batch_size in (None, 8):
        result = run(za, zb, batch_size=batch_size, flavor="all")
        quadra = result.losses["barlow"].by_flavor["quadra"]
        assert all(v is None for v in quadra.whole_set.values())
        assert any("undefined" in note for note in quadra.notes)
        assert all(s.mean is None for s in quadra.per_batch.values())
        out = result.to_dict()
        json.dumps(out, allow_nan=False)
        assert out["losses"]["barlow"]["by_flavor"]["quadra"]["whole_set"]["total"] is None
        # every other flavor is finite: TF Similarity maps the constant column to 0
        tf = result.losses["barlow"].by_flavor["tf-similarity"]
        want = ref.barlow(
            za,
            zb,
            **dict(zip(("lambda_", "scale", "margin", "norm", "eps"), (5e-3, 1.0, 1e-12, "tf", 0.0), strict=True)),
        )
        assert_close(tf.whole_set["total"], want["total"])
        assert result.losses["vicreg"].whole_set["total"] is not None


def test_a_row_below_tfs_guard_keeps_tfs_normalisation(run: Runner) -> None:
    """A row below TF's 1e-12 guard on the squared norm is scaled as TF scales it (NT-Xent's
    paper flavor), not as torch does: its per-batch and whole-set values equal the reference's."""
    za, zb = views_engine(64, 8, 21)
    za[5] = 1e-8  # ||x||^2 = 8e-16: TF scales it by 1e6, torch by 1/||x||
    p = resolve_params("nt_xent", "paper")
    result = run(za, zb, losses=("nt_xent",), batch_size=16, chunk_rows=32)
    lr = result.losses["nt_xent"]
    want = [ref.reference("nt_xent", za[i : i + 16], zb[i : i + 16], p)["total"] for i in range(0, 64, 16)]
    np.testing.assert_allclose(lr.per_batch_values["total"], want, rtol=RTOL)
    assert_close(lr.whole_set["total"], ref.reference("nt_xent", za, zb, p)["total"], what="whole")


def test_the_same_array_twice_is_warned_of(run: Runner) -> None:
    """score za.npy za.npy: identical views (alignment 0, healthy) deserve a word; two keys of
    one container are two arrays, and get none."""
    za, zb = views_engine(64, 6, 16)
    pa, _ = run.files(za, zb)
    [warning] = evaluate_files(pa, pa, Settings(batch_size=16)).warnings
    assert warning.startswith("za and zb are the same array") and "alignment is 0" in warning
    both = run.tmp_path / "both.npz"
    np.savez(both, za=za, zb=zb)
    assert evaluate_files(str(both), None, Settings(batch_size=16)).warnings == []
    shards = run.tmp_path / "shards"
    shards.mkdir()
    np.save(shards / "part1.npy", za[:32])
    np.save(shards / "part2.npy", za[32:])
    pattern = str(shards / "*.npy")  # a glob is no file: named twice, the same array still
    [warning] = evaluate_files(pattern, pattern, Settings(batch_size=16)).warnings
    assert warning.startswith("za and zb are the same array")


def test_a_dimension_whose_statistics_cannot_fit_is_refused_before_the_pass(run: Runner, monkeypatch) -> None:
    """D x D float64 state: D = 16384 needs ~26 GB, which the kernel would answer by killing the
    process without a word. Refused with the sizes when it does not fit; scored when it does,
    when the free memory is not known, and whatever the memory reads below MEMORY_CHECK_FROM
    (a /proc/meminfo reading 0 must not refuse every run: review)."""
    from sslcheck import engine

    za, zb = views_engine(64, 8, 17)
    pa, pb = run.files(za, zb)
    need = engine.DD_MATRICES_AT_PEAK * 8 * 8 * 8
    monkeypatch.setattr(engine, "MEMORY_CHECK_FROM", 0)
    monkeypatch.setattr(engine, "available_memory", lambda: need - 1)
    with pytest.raises(InputError, match=r"D = 8 needs about .* GB of memory for its D x D statistics"):
        evaluate_files(pa, pb, Settings(batch_size=16))
    for free in (need, None):
        monkeypatch.setattr(engine, "available_memory", lambda free=free: free)
        assert evaluate_files(pa, pb, Settings(batch_size=16)).verdict["status"]
    monkeypatch.setattr(engine, "MEMORY_CHECK_FROM", need + 1)
    monkeypatch.setattr(engine, "available_memory", lambda: 0)
    assert evaluate_files(pa, pb, Settings(batch_size=16)).verdict["status"]


def test_available_memory_takes_the_smaller_of_the_kernel_and_the_cgroup_figures(monkeypatch, tmp_path) -> None:
    """MemAvailable + SwapFree (SwapFree may be absent), capped by a cgroup's limit less its
    usage; None where /proc/meminfo cannot be read."""
    from sslcheck import process

    files = {
        "/proc/meminfo": "MemTotal: 100 kB\nMemAvailable: 40 kB\nSwapFree: 10 kB\n",
        "/sys/fs/cgroup/memory.max": "max\n",
        "/sys/fs/cgroup/memory.current": "5\n",
    }

    class FakePath(type(tmp_path)):  # type: ignore[misc]
        def read_text(self, *args, **kwargs):
            if str(self) not in files:
                raise FileNotFoundError(str(self))
            return files[str(self)]

    monkeypatch.setattr(process, "Path", FakePath)
    assert process.available_memory() == 50 * 1024
    files["/sys/fs/cgroup/memory.max"] = "20485\n"  # a container limit: 20485 - 5 bytes left
    assert process.available_memory() == 20480
    files["/proc/meminfo"] = "MemAvailable: 40 kB\n"
    files["/sys/fs/cgroup/memory.max"] = "max\n"
    assert process.available_memory() == 40 * 1024
    del files["/proc/meminfo"]
    assert process.available_memory() is None


def test_available_memory_reads_the_kernel_figures() -> None:
    """Where /proc/meminfo exists, its MemAvailable + SwapFree (kB) in bytes: at least the
    MemAvailable line read here by hand, and less than the machine's RAM plus swap."""
    from sslcheck.process import available_memory

    meminfo = Path("/proc/meminfo")
    if not meminfo.exists():
        assert available_memory() is None
        return
    kb = {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in meminfo.read_text().splitlines())}
    free = available_memory()
    assert free is not None and kb["MemAvailable"] * 1024 * 0.5 <= free <= (kb["MemTotal"] + kb["SwapTotal"]) * 1024
    from sslcheck.process import meminfo

    assert meminfo()["MemTotal"] == kb["MemTotal"] * 1024  # fixed, unlike the free figures


@pytest.mark.parametrize(("n", "where"), [(300, "30 of its 300 rows"), (5000, "of its 4096 sampled rows")])
def test_rows_of_zeros_are_warned_of(run: Runner, n: int, where: str) -> None:
    """Rows that are all zeros (padding, failed embeddings) enter every statistic and had passed
    unseen (half of them: healthy, no word); counted exactly up to the sample size, else in the
    sample, of the view that has them."""
    za, zb = views_engine(n, 6, 18)
    za[::10] = 0.0
    pa, pb = run.files(za, zb)
    [warning] = evaluate_files(pa, pb, Settings(batch_size=64)).warnings
    from sslcheck.engine import sample_indices  # the spec §3 sample (tested on its own)

    expected = int((za[sample_indices(n)] == 0).all(1).sum())
    assert warning.startswith(f"{pa}: {expected} of its") and where in warning and "all zeros" in warning
