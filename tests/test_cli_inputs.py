"""Every bad input of spec/cli.md through `sslcheck score`: exit 2, one `Error:` line, empty stdout."""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from sslcheck.cli import app

GOOD = np.random.default_rng(0).standard_normal((40, 6)).astype(np.float32)


class Boom:
    """Unpickling this would create a file: the side effect must never happen."""

    def __reduce__(self):
        return (Path.touch, (Path("/tmp/sslcheck-pwned"),))


def npy(tmp: Path, name: str, arr: np.ndarray) -> str:
    np.save(tmp / name, arr, allow_pickle=True)
    return str(tmp / name)


def file_with(name: str, content: bytes) -> Callable[[Path], str]:
    """A builder writing `content` as `name`."""

    def build(tmp: Path) -> str:
        (tmp / name).write_bytes(content)
        return str(tmp / name)

    return build


def empty_folder(tmp: Path) -> str:
    (tmp / "empty").mkdir()
    return str(tmp / "empty")


def empty_zip(tmp: Path) -> str:
    zipfile.ZipFile(tmp / "z.npz", "w").close()
    return str(tmp / "z.npz")


def good(tmp: Path) -> str:
    return npy(tmp, "good.npy", GOOD)


def truncated(tmp: Path) -> str:
    path = Path(npy(tmp, "t.npy", GOOD))
    path.write_bytes(path.read_bytes()[:-10])
    return str(path)


def shards_mixed_d(tmp: Path) -> str:
    (tmp / "sh").mkdir()
    np.save(tmp / "sh" / "part-1.npy", GOOD)
    np.save(tmp / "sh" / "part-2.npy", GOOD[:, :4])
    return str(tmp / "sh")


def pickle_pt(tmp: Path) -> str:
    (tmp / "p.pt").write_bytes(pickle.dumps({"za": Boom()}))
    return str(tmp / "p.pt")


def zip_pickle_pt(tmp: Path) -> str:
    torch.save({"za": torch.zeros(3, 2), "evil": Boom()}, tmp / "zp.pt")
    return str(tmp / "zp.pt")


def npz_object(tmp: Path) -> str:
    np.savez(tmp / "o.npz", za=np.array([Boom(), 1], dtype=object))
    return str(tmp / "o.npz")


def npy_header(shape: object) -> bytes:
    """A version-1 .npy header for float32 rows of `shape` (which numpy's writer would refuse)."""
    text = repr({"descr": "<f4", "fortran_order": False, "shape": shape}).encode()
    text += b" " * (63 - (10 + len(text)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text


def negative_shape(tmp: Path) -> str:
    (tmp / "neg.npy").write_bytes(npy_header((-4, 6)) + GOOD.tobytes())
    return str(tmp / "neg.npy")


def fractional_shape_safetensors(tmp: Path) -> str:
    import json

    header = json.dumps({"x": {"dtype": "F32", "shape": [40.5, 6], "data_offsets": [0, GOOD.nbytes]}}).encode()
    (tmp / "f.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + GOOD.tobytes())
    return str(tmp / "f.safetensors")


def meta_pt(tmp: Path) -> str:
    torch.save(torch.empty(40, 6, device="meta"), tmp / "meta.pt")
    return str(tmp / "meta.pt")


def too_large_for_float32(tmp: Path) -> str:
    x = GOOD.astype(np.float64)
    x[3, 2] = 1e39  # float32's largest is 3.4e38
    return npy(tmp, "huge.npy", x)


# (case, builder returning ZA (ZB is GOOD unless the case says otherwise), expected phrase)
CASES: list[tuple[str, Callable[[Path], str], str]] = [
    ("missing path", lambda t: str(t / "nope.npy"), "no such file"),
    ("empty file", file_with("e.npy", b""), "empty"),
    ("text named .npy", file_with("x.npy", b"hello"), "not a valid .npy"),
    ("truncated .npy", truncated, "truncated"),
    ("1-D array", lambda t: npy(t, "a.npy", GOOD[0]), "2-D"),
    ("3-D array", lambda t: npy(t, "a.npy", GOOD.reshape(40, 2, 3)), "2-D"),
    ("0-size array", lambda t: npy(t, "a.npy", GOOD[:0]), "empty"),
    ("integer array", lambda t: npy(t, "a.npy", np.ones((40, 6), np.int64)), "int64"),
    ("bool array", lambda t: npy(t, "a.npy", np.ones((40, 6), bool)), "bool"),
    ("complex array", lambda t: npy(t, "a.npy", GOOD.astype(np.complex64)), "complex64"),
    ("object array / pickle in .npy", lambda t: npy(t, "a.npy", np.array([[Boom()]] * 40, dtype=object)), "pickle"),
    ("pickle in .npz", npz_object, "pickle"),
    ("pickle as .pt", pickle_pt, "pickled Python objects"),
    ("pickle inside a zip .pt", zip_pickle_pt, "pickled Python objects"),
    (
        "NaN",
        lambda t: npy(t, "a.npy", np.where(np.arange(240).reshape(40, 6) == 100, np.nan, GOOD)),
        "1 NaN/Inf value; the first in row 16",
    ),
    ("Inf", lambda t: npy(t, "a.npy", np.where(np.arange(240).reshape(40, 6) == 7, np.inf, GOOD)), "row 1"),
    ("N differs", lambda t: npy(t, "a.npy", GOOD[:30]), "differ in N"),
    ("D differs", lambda t: npy(t, "a.npy", GOOD[:, :5]), "differ in D"),
    ("unknown suffix", file_with("a.csv", b"1,2"), "unknown file type"),
    ("folder with no shards", empty_folder, "no shards"),
    ("shards of mixed D", shards_mixed_d, "part-2.npy"),
    ("zip that is not an npz", empty_zip, "npz"),
    ("random bytes as .safetensors", file_with("r.safetensors", b"\x01" * 64), "safetensors"),
    ("negative shape in a .npy header", negative_shape, "malformed header"),
    ("fractional shape in a .safetensors header", fractional_shape_safetensors, "malformed safetensors header"),
    ("meta tensor in a .pt", meta_pt, "meta device holds no data"),
    (
        "finite float64 too large for float32",
        too_large_for_float32,
        "1 value too large for float32 (the first in row 3)",
    ),
]


@pytest.mark.parametrize(("case", "build", "phrase"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_error_line(runner, tmp_path, case, build, phrase):
    za = build(tmp_path)
    res = runner.invoke(app, ["score", za, good(tmp_path)])
    assert res.exit_code == 2, (case, res.stdout, res.stderr)
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    assert phrase in lines[0], lines[0]
    assert not Path("/tmp/sslcheck-pwned").exists()


def test_container_without_key_lists_keys_and_missing_key(runner, tmp_path):
    np.savez(tmp_path / "c.npz", first=GOOD, second=GOOD)
    res = runner.invoke(app, ["score", str(tmp_path / "c.npz"), good(tmp_path)])
    assert res.exit_code == 2 and "first, second" in res.stderr and "--key" in res.stderr
    res = runner.invoke(app, ["score", str(tmp_path / "c.npz"), good(tmp_path), "--key-a", "third"])
    assert res.exit_code == 2 and "no array named 'third'" in res.stderr and "first, second" in res.stderr


def test_too_few_rows_or_dims(runner, tmp_path):
    for arr, phrase in ((GOOD[:1], "N = 1"), (GOOD[:, :1], "D = 1")):
        a, b = npy(tmp_path, "a.npy", arr), npy(tmp_path, "b.npy", arr)
        res = runner.invoke(app, ["score", a, b])
        assert res.exit_code == 2 and phrase in res.stderr


def test_batch_of_one_row_with_keep_last(runner, tmp_path):
    a, b = npy(tmp_path, "a.npy", GOOD[:33]), npy(tmp_path, "b.npy", GOOD[:33])
    res = runner.invoke(app, ["score", a, b, "--batch-size", "16", "--keep-last"])
    assert res.exit_code == 2 and "1 row" in res.stderr
    assert runner.invoke(app, ["score", a, b, "--batch-size", "16"]).exit_code == 0  # dropped by default


@pytest.mark.parametrize(
    ("content", "phrase"),
    [(np.arange(40, dtype=np.float64), "float64"), (np.arange(39), "39"), (np.arange(80).reshape(40, 2), "1-D")],
)
def test_bad_labels(runner, tmp_path, content, phrase):
    np.save(tmp_path / "labels.npy", content)
    a = good(tmp_path)
    res = runner.invoke(app, ["score", a, a, "--labels", str(tmp_path / "labels.npy")])
    assert res.exit_code == 2 and res.stderr.startswith("Error: ") and phrase in res.stderr


def test_text_labels_add_knn(runner, tmp_path):
    (tmp_path / "labels.txt").write_text("\n".join(str(i % 3) for i in range(40)) + "\n")
    a = good(tmp_path)
    res = runner.invoke(app, ["score", a, a, "--labels", str(tmp_path / "labels.txt"), "--format", "json"])
    assert res.exit_code == 0 and '"knn_top1"' in res.stdout
    (tmp_path / "bad.txt").write_text("1\nx\n")
    assert runner.invoke(app, ["score", a, a, "--labels", str(tmp_path / "bad.txt")]).exit_code == 2


def test_cuda_without_a_gpu_is_a_usage_error(runner, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    a = good(tmp_path)
    res = runner.invoke(app, ["score", a, a, "--device", "cuda"])
    assert res.exit_code == 2 and "no CUDA device" in res.stderr


def test_too_large_for_float32_is_fine_in_float64_and_nan_wins_the_message(runner, tmp_path):
    huge = too_large_for_float32(tmp_path)
    assert runner.invoke(app, ["score", huge, good(tmp_path), "--dtype", "float64"]).exit_code == 0
    x = np.load(huge)
    x[7, 0] = np.nan  # a NaN in the file is named first: it is wrong in any dtype
    res = runner.invoke(app, ["score", npy(tmp_path, "both.npy", x), good(tmp_path)])
    assert res.exit_code == 2 and "1 NaN/Inf value; the first in row 7" in res.stderr
