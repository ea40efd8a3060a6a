"""The io layer: every format and dtype round-trips exactly in chunks; every bad input is an
InputError naming the file and the problem; nothing is ever unpickled."""

from __future__ import annotations

import collections
import json
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sslcheck.errors import InputError
from sslcheck.io import ArraySource, load_labels, open_array, open_pair
from sslcheck.io.shards import natural_key
from sslcheck.io.source import BufferRing

N, D = 23, 5
ROWS = [1, 4, 7, N, N + 9]  # 1, sizes not dividing N, exactly N, more than N
FLOATS = ["float16", "float32", "float64"]
CHUNK_DTYPE = {"float16": np.float16, "bfloat16": np.float32, "float32": np.float32, "float64": np.float64}


def read_all(src: ArraySource, rows: int) -> np.ndarray:
    """All chunks concatenated, checking the chunk contract on the way."""
    blocks = [b.copy() for b in src.chunks(rows)]
    assert blocks, "no chunks"
    assert all(len(b) == rows for b in blocks[:-1]), [len(b) for b in blocks]
    assert 1 <= len(blocks[-1]) <= rows
    for b in blocks:
        assert b.ndim == 2 and b.shape[1] == src.d
        assert b.flags.c_contiguous and b.dtype.isnative
        assert b.dtype == CHUNK_DTYPE[src.dtype]
    out = np.concatenate(blocks)
    assert out.shape == (src.n, src.d)
    return out


def tensor(dtype: str, n: int = N, d: int = D, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=torch.float64) * 3).to(getattr(torch, dtype))


def expected(t: torch.Tensor) -> np.ndarray:
    """What the chunks must hold: the values, bfloat16 widened to float32."""
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy()


def write(tmp_path: Path, kind: str, t: torch.Tensor, name: str = "z") -> tuple[Path, str | None]:
    """Write `t` in the format `kind`; return the path and the key to read it back with."""
    if kind.startswith("np"):
        return _write_numpy(tmp_path, kind, t.numpy(), name)
    if kind == "pt":
        p = tmp_path / f"{name}.pt"
        torch.save(t, p)
        return p, None
    if kind == "pt_dict":
        p = tmp_path / f"{name}.pth"
        torch.save({"za": t, "zb": t + 1, "epoch": 3}, p)
        return p, "za"
    if kind == "pt_legacy":
        p = tmp_path / f"{name}.pt"
        torch.save({"za": t}, p, _use_new_zipfile_serialization=False)
        return p, "za"
    if kind == "pt_transposed":  # a non-contiguous view is saved with its strides
        p = tmp_path / f"{name}.pt"
        torch.save(t.t().contiguous().t(), p)
        return p, None
    if kind == "safetensors":
        p = tmp_path / f"{name}.safetensors"
        if t.dtype == torch.bfloat16:
            safetensors.torch.save_file({"za": t, "zb": t.clone()}, p)
        else:
            safetensors.numpy.save_file({"za": t.numpy(), "zb": t.numpy()}, p, metadata={"epoch": "3"})
        return p, "za"
    raise AssertionError(kind)


def _write_numpy(tmp_path: Path, kind: str, a: np.ndarray, name: str) -> tuple[Path, str | None]:
    if kind == "npy":
        p = tmp_path / f"{name}.npy"
        np.save(p, a)
        return p, None
    if kind == "npy_fortran":
        p = tmp_path / f"{name}.npy"
        np.save(p, np.asfortranarray(a))
        return p, None
    if kind == "npy_bigendian":
        p = tmp_path / f"{name}.npy"
        np.save(p, a.astype(a.dtype.newbyteorder(">")))
        return p, None
    if kind in ("npz_stored", "npz_compressed", "npz_stored_fortran", "npz_compressed_fortran"):
        p = tmp_path / f"{name}.npz"
        save = np.savez_compressed if "compressed" in kind else np.savez
        save(p, other=np.zeros(3), za=np.asfortranarray(a) if "fortran" in kind else a)
        return p, "za"
    raise AssertionError(kind)


CASES = (
    [(k, dt) for k in ("npy", "npy_fortran", "npy_bigendian") for dt in FLOATS]
    + [
        (k, dt)
        for k in ("npz_stored", "npz_compressed", "npz_stored_fortran", "npz_compressed_fortran")
        for dt in FLOATS
    ]
    + [(k, dt) for k in ("pt", "pt_dict", "pt_legacy", "pt_transposed") for dt in [*FLOATS, "bfloat16"]]
    + [("safetensors", dt) for dt in [*FLOATS, "bfloat16"]]
)


@pytest.mark.parametrize(("kind", "dtype"), CASES)
def test_chunks_reassemble_the_array_exactly(tmp_path: Path, kind: str, dtype: str) -> None:
    t = tensor(dtype)
    path, key = write(tmp_path, kind, t)
    src = open_array(path, key)
    assert (src.n, src.d, src.dtype, src.key) == (N, D, dtype, key)
    assert src.nbytes == N * D * t.element_size()
    for rows in ROWS:
        np.testing.assert_array_equal(read_all(src, rows), expected(t), strict=True)


@pytest.mark.parametrize(
    ("kind", "fmt"), [("npy", "npy"), ("npz_stored", "npz"), ("pt", "pt"), ("safetensors", "safetensors")]
)
def test_format_and_label(tmp_path: Path, kind: str, fmt: str) -> None:
    path, key = write(tmp_path, kind, tensor("float32"))
    src = open_array(str(path), key)
    assert src.format == fmt
    assert src.path == str(path)
    assert src.label == (f"{path}[{key}]" if key else str(path))


def test_notes_say_what_was_loaded_whole(tmp_path: Path) -> None:
    t = tensor("float32")
    legacy, key = write(tmp_path, "pt_legacy", t, "legacy")
    assert open_array(legacy, key).notes() == ["legacy (non-zip) .pt: loaded whole into memory"]
    modern, _ = write(tmp_path, "pt", t, "modern")
    assert open_array(modern).notes() == []
    fortran, key = write(tmp_path, "npz_compressed_fortran", t, "fortran")
    assert "decompressed whole" in open_array(fortran, key).notes()[0]
    stored, key = write(tmp_path, "npz_stored_fortran", t, "stored")
    assert open_array(stored, key).notes() == []


def test_pt_parameter_with_grad(tmp_path: Path) -> None:
    t = tensor("float32")
    path = tmp_path / "param.pt"
    torch.save(torch.nn.Parameter(t.clone()), path)
    np.testing.assert_array_equal(read_all(open_array(path), 5), t.numpy())
    chunks = open_array(path).chunks(5)
    next(chunks)
    assert torch.is_grad_enabled()  # reading paused mid-file leaves the caller's grad mode alone


def assert_last_blocks_intact(src: ArraySource, rows: int, keep: int, want: np.ndarray) -> None:
    """Hold the last `keep` blocks as yielded (views, not copies): each must still hold its own
    rows while the next keep - 1 are read (buffers are reused after that: read_all copies)."""
    held: collections.deque[tuple[int, np.ndarray]] = collections.deque(maxlen=keep)
    start = 0
    for block in src.chunks(rows, keep):
        held.append((start, block))
        start += len(block)
        for first, b in held:
            np.testing.assert_array_equal(b, want[first : first + len(b)], strict=True)
    assert start == src.n


@pytest.mark.parametrize(("kind", "dtype"), CASES)
def test_the_last_keep_blocks_stay_intact(tmp_path: Path, kind: str, dtype: str) -> None:
    t = tensor(dtype)
    path, key = write(tmp_path, kind, t)
    for rows in (1, 4, N):
        for keep in (1, 2, 5):
            assert_last_blocks_intact(open_array(path, key), rows, keep, expected(t))


def test_a_buffer_ring_hands_out_keep_arrays_in_turn() -> None:
    ring = BufferRing(3, (2, 2), np.float32)
    first = [ring.next() for _ in range(3)]
    assert len({id(a) for a in first}) == 3 and all(a.shape == (2, 2) and a.dtype == np.float32 for a in first)
    assert [ring.next() for _ in range(3)] == first  # the same arrays, in the same turn (identity)
    with pytest.raises(ValueError, match="keep"):
        BufferRing(0, (2, 2), np.float32)


def test_rows_must_be_positive(tmp_path: Path) -> None:
    path, _ = write(tmp_path, "npy", tensor("float32"))
    with pytest.raises(ValueError, match="rows"):
        next(iter(open_array(path).chunks(0)))


# --- one path holding both views ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["npz_stored", "pt_dict", "safetensors"])
def test_open_pair_single_path(tmp_path: Path, kind: str) -> None:
    t = tensor("float32")
    path = tmp_path / "both.npz"
    if kind == "npz_stored":
        np.savez(path, za=t.numpy(), zb=t.numpy() + 1)
    else:
        path, _ = write(tmp_path, kind, t)
    a, b = open_pair(path)
    assert (a.key, b.key) == ("za", "zb")
    np.testing.assert_array_equal(read_all(a, 10), t.numpy())


def test_open_pair_single_path_custom_keys(tmp_path: Path) -> None:
    t = tensor("float32")
    path = tmp_path / "both.npz"
    np.savez(path, left=t.numpy(), right=t.numpy())
    a, b = open_pair(path, key_a="left", key_b="right")
    assert (a.label, b.label) == (f"{path}[left]", f"{path}[right]")


def test_open_pair_two_paths_with_one_key(tmp_path: Path) -> None:
    t = tensor("float32")
    np.savez(tmp_path / "a.npz", emb=t.numpy(), ids=np.arange(N))
    np.savez(tmp_path / "b.npz", emb=t.numpy(), ids=np.arange(N))
    a, b = open_pair(tmp_path / "a.npz", tmp_path / "b.npz", key="emb")
    assert (a.key, b.key) == ("emb", "emb")


def test_open_pair_single_path_without_the_keys_lists_them(tmp_path: Path) -> None:
    path = tmp_path / "both.npz"
    np.savez(path, left=np.zeros((4, 3)), right=np.zeros((4, 3)))
    with pytest.raises(InputError, match=r"both views under the keys 'za' and 'zb'.*left, right"):
        open_pair(path)


def test_open_pair_single_npy(tmp_path: Path) -> None:
    path, _ = write(tmp_path, "npy", tensor("float32"))
    with pytest.raises(InputError, match=r"one path given.*single array"):
        open_pair(path)


# --- shards -------------------------------------------------------------------------------


def test_natural_key() -> None:
    names = ["part-10.npy", "part-2.npy", "part-1.npy", "part-1b.npy", "a.npy"]
    assert sorted(names, key=natural_key) == ["a.npy", "part-1.npy", "part-1b.npy", "part-2.npy", "part-10.npy"]


def _write_shards(folder: Path, sizes: list[int], d: int = D) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    parts = [
        np.full((s, d), i, dtype=np.float32) + np.arange(s * d, dtype=np.float32).reshape(s, d) / 1000
        for i, s in enumerate(sizes)
    ]
    for i, part in enumerate(parts):
        np.save(folder / f"part-{i}.npy", part)
    return np.concatenate(parts)


def test_shards_in_natural_order_reblocked(tmp_path: Path) -> None:
    want = _write_shards(tmp_path / "emb", [3, 1, 5, 2, 4, 7, 1, 2, 3, 6, 2, 1])  # part-0..part-11
    (tmp_path / "emb" / "README.md").write_text("not a shard")
    src = open_array(tmp_path / "emb")
    assert (src.format, src.n, src.d, src.dtype) == ("shards", len(want), D, "float32")
    assert src.notes()[0] == "12 npy shards"
    for rows in [*ROWS, 3, 5, 100]:
        np.testing.assert_array_equal(read_all(src, rows), want)


def test_a_bad_value_in_a_shard_names_the_shard_and_its_row(tmp_path: Path) -> None:
    from sslcheck.engine import evaluate

    want = _write_shards(tmp_path / "emb", [3, 4, 5])  # rows 0-2, 3-6, 7-11
    assert open_array(tmp_path / "emb").where(8) == f"row 8 ({tmp_path / 'emb' / 'part-2.npy'} row 1)"
    part = np.load(tmp_path / "emb" / "part-2.npy")
    part[1, 0] = np.nan
    np.save(tmp_path / "emb" / "part-2.npy", part)
    np.save(tmp_path / "b.npy", want)
    with pytest.raises(InputError, match=r"1 NaN/Inf value; the first in row 8 \(.*part-2\.npy row 1\)"):
        evaluate(*open_pair(tmp_path / "emb", tmp_path / "b.npy"))


def test_a_path_with_glob_characters_that_exists_is_a_path(tmp_path: Path) -> None:
    path = tmp_path / "emb[1].npy"
    np.save(path, np.ones((3, 2), np.float32))
    assert open_array(str(path)).format == "npy"


def test_shards_by_glob(tmp_path: Path) -> None:
    want = _write_shards(tmp_path / "emb", [4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 3])
    np.save(tmp_path / "emb" / "other.npy", np.zeros((2, D), np.float32))  # not matched
    src = open_array(str(tmp_path / "emb" / "part-*.npy"))
    assert src.n == len(want)
    np.testing.assert_array_equal(read_all(src, 6), want)


@pytest.mark.parametrize("kind", ["npz_stored", "npz_compressed", "pt_dict", "pt", "safetensors"])
def test_shards_of_containers_pass_the_key_through(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "emb"
    folder.mkdir()
    parts = [tensor("float32", n, seed=n) for n in (5, 2, 9)]
    key = None
    for i, part in enumerate(parts):
        _, key = write(folder, kind, part, f"shard-{i}")
    src = open_array(folder, key)
    assert src.key == key
    np.testing.assert_array_equal(read_all(src, 4), np.concatenate([p.numpy() for p in parts]))


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 9), min_size=1, max_size=6), rows=st.integers(1, 20), keep=st.integers(1, 5))
def test_shard_chunks_have_exactly_rows_rows(sizes: list[int], rows: int, keep: int) -> None:
    """Whole blocks as the shards read them and blocks stitched across shards alike."""
    with tempfile.TemporaryDirectory() as tmp:
        want = _write_shards(Path(tmp) / "emb", sizes, d=3)
        np.testing.assert_array_equal(read_all(open_array(Path(tmp) / "emb"), rows), want)
        assert_last_blocks_intact(open_array(Path(tmp) / "emb"), rows, keep, want)


# --- labels -------------------------------------------------------------------------------


def test_labels_npy_and_txt(tmp_path: Path) -> None:
    np.save(tmp_path / "y.npy", np.array([3, 1, 2], dtype=np.uint8))
    (tmp_path / "y.txt").write_text("3\n-1\n 2 \n\n\n")
    got = load_labels(tmp_path / "y.npy", 3)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, [3, 1, 2])
    np.testing.assert_array_equal(load_labels(str(tmp_path / "y.txt"), 3), [3, -1, 2])


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (np.array([0.5, 1.0, 2.0]), "labels must be integers, got dtype float64"),
        (np.array(["a", "b", "c"]), "labels must be integers"),
        (np.array([True, False, True]), "labels must be integers, got dtype bool"),
        (np.zeros((3, 1), dtype=np.int64), r"1-D \[N\] array, got shape \(3, 1\)"),
        (np.arange(4), "4 labels but the embeddings have N = 3 rows"),
        (np.array([1, "x", None], dtype=object), "pickle.*Save the labels as an integer array"),
    ],
)
def test_bad_labels_npy(tmp_path: Path, content: np.ndarray, match: str) -> None:
    path = tmp_path / "y.npy"
    np.save(path, content, allow_pickle=True)
    with pytest.raises(InputError, match=match) as info:
        load_labels(path, 3)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("1\n2.0\n3\n", r"line 2: '2\.0' is not an integer"),
        ("1\ncat\n3\n", r"line 2: 'cat' is not an integer"),
        ("1\n\n3\n", "line 2: '' is not an integer"),
        ("1\n2\n", "2 labels but the embeddings have N = 3"),
    ],
)
def test_bad_labels_txt(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "y.txt"
    path.write_text(text)
    with pytest.raises(InputError, match=match):
        load_labels(path, 3)


def test_labels_not_npy(tmp_path: Path) -> None:
    (tmp_path / "y.npy").write_text("1\n2\n3\n")
    with pytest.raises(InputError, match=r"y\.npy: not a valid \.npy file"):
        load_labels(tmp_path / "y.npy", 3)
    np.save(tmp_path / "y.npy", np.arange(3))
    (tmp_path / "y.npy").write_bytes((tmp_path / "y.npy").read_bytes()[:-4])
    with pytest.raises(InputError, match=r"y\.npy: not a valid \.npy file"):
        load_labels(tmp_path / "y.npy", 3)


def test_labels_missing_and_unknown(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_labels(tmp_path / "nope.npy", 3)
    (tmp_path / "y.csv").write_text("1\n2\n3\n")
    with pytest.raises(InputError, match=r"unknown labels file type '\.csv'"):
        load_labels(tmp_path / "y.csv", 3)


# --- bad inputs: one InputError each, naming the file and the problem ----------------------


def _raises(path: Path | str, match: str, key: str | None = None) -> InputError:
    with pytest.raises(InputError, match=match) as info:
        open_array(path, key)
    message = str(info.value)
    assert "\n" not in message
    assert Path(str(path)).name in message
    return info.value


def test_missing_path(tmp_path: Path) -> None:
    _raises(tmp_path / "nope.npy", "no such file or folder")
    (tmp_path / "loop1.npy").symlink_to("loop2.npy")
    (tmp_path / "loop2.npy").symlink_to("loop1.npy")
    _raises(tmp_path / "loop1.npy", "a symlink to nothing")


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".pt", ".safetensors"])
def test_empty_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"empty{suffix}"
    path.touch()
    _raises(path, "the file is empty")


def test_text_named_npy(tmp_path: Path) -> None:
    path = tmp_path / "z.npy"
    path.write_text("1,2,3\n4,5,6\n")
    _raises(path, "not a valid .npy file")


def test_truncated_npy(tmp_path: Path) -> None:
    path, _ = write(tmp_path, "npy", tensor("float32"))
    path.write_bytes(path.read_bytes()[:-7])
    _raises(path, "truncated")


def test_truncated_npy_header(tmp_path: Path) -> None:
    path, _ = write(tmp_path, "npy", tensor("float32"))
    path.write_bytes(path.read_bytes()[:20])
    _raises(path, "not a valid .npy file")


def test_zip_that_is_not_npz(tmp_path: Path) -> None:
    path = tmp_path / "z.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("notes.txt", "hello")
    _raises(path, "not an .npz archive")


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_corrupt_npz(tmp_path: Path, cut: float) -> None:
    path, _ = write(tmp_path, "npz_compressed", tensor("float64"))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    _raises(path, "not a valid .npz archive")


def test_corrupt_npz_member_data(tmp_path: Path) -> None:
    # A flipped byte inside compressed data: the archive opens, the stream fails mid-read.
    path = tmp_path / "z.npz"
    np.savez_compressed(path, za=np.random.default_rng(0).standard_normal((500, 8)))
    data = bytearray(path.read_bytes())
    data[400] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"z\.npz\[za\]"):
        read_all(open_array(path), 64)


def _stored_npz(tmp_path: Path, order: str, dtype: str) -> tuple[Path, np.ndarray, int]:
    """A stored (uncompressed) member za [1000, 6] (more than zipfile's 4 KiB read-ahead, so the
    reader, not zipfile, meets the data); returns where its data starts in the file."""
    x = np.asarray(np.random.default_rng(3).standard_normal((1000, 6)), dtype=dtype, order=order)  # type: ignore[call-overload]
    path = tmp_path / "z.npz"
    np.savez(path, za=x)
    data = path.read_bytes()
    return path, x, data.index(x.tobytes(order="A"))


def _chunks_up_to_the_last(src: ArraySource, rows: int) -> None:
    """Take chunks until the last one arrives (a consumer that stops there never resumes)."""
    chunks = src.chunks(rows)
    for _ in range(-(-src.n // rows)):
        next(chunks)


@pytest.mark.parametrize(("order", "dtype"), [("C", "<f4"), ("C", ">f8"), ("F", "<f4"), ("F", ">f2")])
@pytest.mark.parametrize("where", ["data", "header padding", "last byte"])
def test_a_flipped_byte_in_a_stored_npz_member_is_caught(tmp_path: Path, order: str, dtype: str, where: str) -> None:
    """zipfile would refuse the member (its CRC-32); so does the reader, which maps its bytes,
    by the time it hands out the last chunk."""
    path, x, data_at = _stored_npz(tmp_path, order, dtype)
    np.testing.assert_array_equal(read_all(open_array(path), 64), x)  # intact: read as is
    raw = bytearray(path.read_bytes())
    at = {"data": data_at + x.nbytes // 2, "header padding": data_at - 2, "last byte": data_at + x.nbytes - 1}[where]
    if where == "header padding":  # a space -> a tab: the header still parses
        assert raw[at] == ord(" ")
        raw[at] = ord("\t")
    else:
        raw[at] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError, match=r"z\.npz\[za\]: the archive member is corrupt \(its CRC-32"):
        _chunks_up_to_the_last(open_array(path), 64)


def _flip_directory_crc(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    directory = raw.index(b"PK\x01\x02")  # the central directory's entry: what zipfile checks against
    raw[directory + 16] ^= 0xFF
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("trailing", [0, 3, 2_000_000])
@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_an_npz_member_whose_crc_differs_is_caught(tmp_path: Path, order: str, trailing: int, compression: int) -> None:
    """Also with bytes after the array in the member (numpy writes none; a zip tool may): the
    whole member is checked, as zipfile checks it, before the last chunk is handed out."""
    x = np.asarray(np.random.default_rng(4).standard_normal((500, 8)), order=order)  # type: ignore[call-overload]
    npy = tmp_path / "za.npy"
    np.save(npy, x)
    path = tmp_path / "z.npz"
    with zipfile.ZipFile(path, "w", compression) as zf:
        zf.writestr("za.npy", npy.read_bytes() + b"\x01" * trailing)
    np.testing.assert_array_equal(read_all(open_array(path), 64), x)
    _flip_directory_crc(path)
    with pytest.raises(InputError, match=r"z\.npz\[za\]: .*(corrupt|not a valid).*CRC-32"):
        _chunks_up_to_the_last(open_array(path), 64)


def test_truncated_npz_member(tmp_path: Path) -> None:
    # A well-formed zip whose .npy member promises more data than it holds.
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((10, 4)))
    path = tmp_path / "z.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("za.npy", good.read_bytes()[:-8])
    _raises(path, r"z\.npz\[za\]: the member is truncated")


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".safetensors", ".npz", ".npy"])
def test_random_bytes(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"z{suffix}"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    _raises(path, "not a")


def test_npz_with_a_member_twice_is_refused(tmp_path: Path) -> None:
    """zipfile reads the last of two same-named members and np.load the first: either way one
    view's data silently stands in for another's."""
    import io
    import warnings
    import zipfile

    path = tmp_path / "z.npz"
    with zipfile.ZipFile(path, "w") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name, and writes it
        for seed in (0, 1, 2):
            buf = io.BytesIO()
            np.save(buf, np.random.default_rng(seed).standard_normal((8, 3)).astype(np.float32))
            zf.writestr("zb.npy" if seed == 2 else "za.npy", buf.getvalue())
    _raises(path, "holds za.npy more than once", "za")
    assert open_array(path, "zb").n == 8  # the key that is there once reads as it is


def test_npz_named_pt(tmp_path: Path) -> None:
    path = tmp_path / "z.pt"
    np.savez(path.with_suffix(".npz"), za=np.zeros((3, 3)))
    path.with_suffix(".npz").rename(path)
    _raises(path, "not a valid PyTorch file")


def test_truncated_pt(tmp_path: Path) -> None:
    path, _ = write(tmp_path, "pt", tensor("float32"))
    path.write_bytes(path.read_bytes()[:300])
    _raises(path, "not a valid PyTorch file")


def test_safetensors_truncated_and_garbage_header(tmp_path: Path) -> None:
    path = tmp_path / "z.safetensors"
    safetensors.numpy.save_file({"za": tensor("float32").numpy()}, path)
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    _raises(path, "truncated")
    path.write_bytes(data[:6])
    _raises(path, "shorter than 8 bytes")
    path.write_bytes((10**12).to_bytes(8, "little") + b"{}")
    _raises(path, "header length")
    path.write_bytes((9).to_bytes(8, "little") + b"{not json")
    _raises(path, "header is not JSON")
    header = json.dumps({"za": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 8]}})
    path.write_bytes(len(header).to_bytes(8, "little") + header.encode() + bytes(16))
    _raises(path, r"needs 16 bytes, data_offsets \[0, 8\] span 8", "za")
    header = json.dumps({"za": {"dtype": "F32", "shape": [2, 2]}})
    path.write_bytes(len(header).to_bytes(8, "little") + header.encode() + bytes(16))
    _raises(path, "malformed safetensors header", "za")


def _entry(begin: object, end: object) -> dict:
    return {"dtype": "F32", "shape": [2, 2], "data_offsets": [begin, end]}


@pytest.mark.parametrize(
    ("header", "size", "match"),
    [
        ({"za": _entry(0, 16), "zb": _entry(0, 16)}, 16, r"'zb' at bytes 0-16 overlaps the tensor before it"),
        ({"za": _entry(0, 16), "zb": _entry(8, 24)}, 24, "overlaps the tensor before it"),
        ({"za": _entry(0, 16), "zb": _entry(20, 36)}, 36, "leaves a gap of 4 bytes before it"),
        ({"za": _entry(4, 20)}, 20, "leaves a gap of 4 bytes"),
        ({"za": _entry(0, 16)}, 20, r"bytes after the tensors: its tensors take 16 bytes, it holds 20"),
        ({"za": _entry(0.0, 16.0)}, 16, "malformed safetensors header for 'za'"),
        ({"za": _entry("0", "16")}, 16, "malformed safetensors header for 'za'"),
        ({"za": _entry(16, 0)}, 16, "malformed safetensors header for 'za'"),
        ({"za": _entry(0, 16), "__metadata__": ["x"]}, 16, "__metadata__ is not a map of strings"),
        ({"za": _entry(0, 16), "__metadata__": {"a": 1}}, 16, "__metadata__ is not a map of strings"),
        ({"za": _entry(0, 16), "i": {"dtype": "I64", "shape": [3], "data_offsets": [16, 32]}}, 32, "needs 24 bytes"),
    ],
)
def test_safetensors_layout_is_checked_as_the_library_checks_it(
    tmp_path: Path, header: dict, size: int, match: str
) -> None:
    """Byte ranges that overlap (two views on the same bytes would score a view against
    itself: alignment 0, healthy), leave gaps or trailing bytes, non-integer offsets and a
    malformed __metadata__: each refused, as the safetensors library refuses them."""
    path = tmp_path / "z.safetensors"
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + bytes(size))
    _raises(path, match, "za")
    if "overlaps" not in match and "gap" not in match and "after" not in match:
        return
    with pytest.raises(safetensors.SafetensorError):  # the library agrees
        safetensors.numpy.load_file(path)


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((N,), r"2-D \[N, D\] array, got 1-D"),
        ((4, 3, 2), r"got 3-D shape \(4, 3, 2\)"),
        ((0, 5), r"empty \(shape \(0, 5\)\)"),
        ((5, 0), r"empty \(shape \(5, 0\)\)"),
    ],
)
@pytest.mark.parametrize("kind", ["npy", "npz_stored", "pt", "safetensors"])
def test_bad_shape(tmp_path: Path, kind: str, shape: tuple[int, ...], match: str) -> None:
    t = torch.zeros(shape, dtype=torch.float32)
    path, key = _write_any(tmp_path, kind, t)
    _raises(path, match, key)


def _write_any(tmp_path: Path, kind: str, t: torch.Tensor) -> tuple[Path, str | None]:
    """Like `write`, for tensors of any shape and dtype."""
    if kind == "npy":
        np.save(tmp_path / "z.npy", t.numpy())
        return tmp_path / "z.npy", None
    if kind == "npz_stored":
        np.savez(tmp_path / "z.npz", za=t.numpy())
        return tmp_path / "z.npz", "za"
    if kind == "pt":
        torch.save(t, tmp_path / "z.pt")
        return tmp_path / "z.pt", None
    safetensors.torch.save_file({"za": t}, tmp_path / "z.safetensors")
    return tmp_path / "z.safetensors", "za"


@pytest.mark.parametrize(
    ("dtype", "name"),
    [
        (torch.int64, "int64"),
        (torch.int32, "int32"),
        (torch.uint8, "uint8"),
        (torch.bool, "bool"),
        (torch.complex64, "complex64"),
    ],
)
@pytest.mark.parametrize("kind", ["npy", "npz_stored", "pt", "safetensors"])
def test_non_float_dtype(tmp_path: Path, kind: str, dtype: torch.dtype, name: str) -> None:
    if kind == "safetensors" and dtype == torch.complex64:
        pytest.skip("safetensors has no complex dtype")
    path, key = _write_any(tmp_path, kind, torch.ones((4, 3), dtype=dtype))
    st_names = {"int64": "I64", "int32": "I32", "uint8": "U8", "bool": "BOOL"}
    want = st_names[name] if kind == "safetensors" else name
    _raises(path, f"dtype {want} is not supported; expected a float array", key)


def test_object_npy(tmp_path: Path) -> None:
    path = tmp_path / "z.npy"
    np.save(path, np.array([[1.0, "a"], [2.0, "b"]], dtype=object), allow_pickle=True)
    _raises(path, "holds Python objects")


def test_several_arrays_without_key(tmp_path: Path) -> None:
    np.savez(tmp_path / "z.npz", za=np.zeros((3, 3)), zb=np.zeros((3, 3)), ids=np.arange(3))
    _raises(tmp_path / "z.npz", r"holds 3 arrays \(za, zb, ids\); choose one with --key")
    torch.save({"za": torch.zeros(3, 3), "zb": torch.zeros(3, 3)}, tmp_path / "z.pt")
    _raises(tmp_path / "z.pt", r"holds 2 arrays \(za, zb\)")
    safetensors.numpy.save_file({"zb": np.zeros((3, 3)), "za": np.zeros((3, 3))}, tmp_path / "z.safetensors")
    _raises(tmp_path / "z.safetensors", r"holds 2 arrays \(za, zb\)")


@pytest.mark.parametrize("kind", ["npz_stored", "pt_dict", "safetensors"])
def test_missing_key(tmp_path: Path, kind: str) -> None:
    path, _ = write(tmp_path, kind, tensor("float32"))
    err = _raises(path, r"no array named 'nope'; it holds: .*za", "nope")
    assert "zb" in str(err) or "other" in str(err)


def test_key_on_a_single_array_file(tmp_path: Path) -> None:
    path, _ = write(tmp_path, "npy", tensor("float32"))
    _raises(path, "holds one array; --key 'za' does not apply", "za")
    path, _ = write(tmp_path, "pt", tensor("float32"))
    _raises(path, "holds one array", "za")


def test_pt_non_tensor_contents(tmp_path: Path) -> None:
    torch.save([torch.zeros(3, 3)], tmp_path / "list.pt")
    _raises(tmp_path / "list.pt", "holds a list; expected a tensor or a dict of tensors")
    torch.save({"epoch": 3}, tmp_path / "meta.pt")
    _raises(tmp_path / "meta.pt", r"a dict with no tensors \(keys: epoch\)")
    torch.save({"epoch": 3, "za": torch.zeros(3, 3)}, tmp_path / "mixed.pt")
    _raises(tmp_path / "mixed.pt", r"mixed\.pt\[epoch\]: is a int, not a tensor", "epoch")


def test_sparse_pt(tmp_path: Path) -> None:
    torch.save(torch.eye(4).to_sparse(), tmp_path / "sparse.pt")
    _raises(tmp_path / "sparse.pt", "sparse")


def test_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "z.csv"
    path.write_text("1,2\n")
    _raises(path, r"unknown file type '\.csv'; expected \.npy, \.npz, \.pt, \.pth, \.safetensors")
    path = tmp_path / "z"
    path.write_text("1,2\n")
    _raises(path, r"unknown file type '\(no suffix\)'")


def test_folder_with_no_shards(tmp_path: Path) -> None:
    (tmp_path / "emb").mkdir()
    (tmp_path / "emb" / "README.md").write_text("nothing here")
    _raises(tmp_path / "emb", "the folder holds no shards")


def test_glob_with_no_match(tmp_path: Path) -> None:
    _raises(str(tmp_path / "emb-*.npy"), "no files match this pattern")


def test_glob_matching_a_non_shard(tmp_path: Path) -> None:
    _write_shards(tmp_path / "emb", [2, 2])
    (tmp_path / "emb" / "part-9.txt").write_text("x")
    with pytest.raises(InputError, match=r"part-9\.txt: unknown file type"):
        open_array(str(tmp_path / "emb" / "part-*"))


def test_shards_of_mixed_d(tmp_path: Path) -> None:
    folder = tmp_path / "emb"
    _write_shards(folder, [2, 3])
    np.save(folder / "part-10.npy", np.zeros((4, D + 1), np.float32))
    err = _raises(folder, "shards differ in D")
    assert f"part-0.npy has D = {D}" in str(err) and f"part-10.npy has D = {D + 1}" in str(err)


def test_shards_of_mixed_formats_and_dtypes(tmp_path: Path) -> None:
    folder = tmp_path / "emb"
    _write_shards(folder, [2, 3])
    torch.save(torch.zeros(2, D), folder / "part-5.pt")
    _raises(folder, r"mixed formats: part-0\.npy is npy, part-5\.pt is pt")
    (folder / "part-5.pt").unlink()
    np.save(folder / "part-5.npy", np.zeros((2, D), np.float64))
    _raises(folder, "shards differ in dtype: .*float32, .*float64")


def test_bad_shard_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "emb"
    _write_shards(folder, [2, 3])
    (folder / "part-7.npy").write_text("oops")
    _raises(folder, r"part-7\.npy: not a valid \.npy file")


# --- pair checks (open_pair) ----------------------------------------------------------------


def test_views_differ(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros((5, 3), np.float32))
    np.save(tmp_path / "b.npy", np.zeros((5, 4), np.float32))
    np.save(tmp_path / "c.npy", np.zeros((6, 3), np.float32))
    with pytest.raises(InputError, match=r"views differ in D: .*a\.npy has D = 3, .*b\.npy"):
        open_pair(tmp_path / "a.npy", tmp_path / "b.npy")
    with pytest.raises(InputError, match=r"views differ in N: .*a\.npy has N = 5 rows"):
        open_pair(tmp_path / "a.npy", tmp_path / "c.npy")


def test_too_few_rows_or_dims(tmp_path: Path) -> None:
    np.save(tmp_path / "n1.npy", np.zeros((1, 3), np.float32))
    np.save(tmp_path / "d1.npy", np.zeros((5, 1), np.float32))
    with pytest.raises(InputError, match=r"n1\.npy: N = 1; at least 2 rows"):
        open_pair(tmp_path / "n1.npy", tmp_path / "n1.npy")
    with pytest.raises(InputError, match=r"d1\.npy: D = 1; at least 2 dimensions"):
        open_pair(tmp_path / "d1.npy", tmp_path / "d1.npy")


# --- nothing is ever unpickled ----------------------------------------------------------------


class Payload:
    """Creates `marker` when unpickled: the proof that a reader executed the pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


def test_payload_is_live(tmp_path: Path) -> None:
    marker = tmp_path / "proof"
    pickle.loads(pickle.dumps(Payload(marker))).close()
    assert marker.exists()


@pytest.mark.parametrize("legacy", [False, True])
def test_malicious_pt_is_refused(tmp_path: Path, legacy: bool) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"za": torch.zeros(4, 3), "x": Payload(marker)}, path, _use_new_zipfile_serialization=not legacy)
    _raises(path, "holds pickled Python objects that sslcheck will not execute", "za")
    assert not marker.exists()


def test_plain_pickle_named_pt_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(Payload(marker), protocol=2))
    _raises(path, "holds pickled Python objects")
    assert not marker.exists()


def test_malicious_npy_and_npz_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = np.empty((2, 2), dtype=object)
    evil[:] = Payload(marker)
    np.save(tmp_path / "evil.npy", evil, allow_pickle=True)
    np.savez(tmp_path / "evil.npz", za=evil)
    np.savez_compressed(tmp_path / "evilc.npz", za=evil)
    _raises(tmp_path / "evil.npy", "holds Python objects")
    _raises(tmp_path / "evil.npz", "holds Python objects")
    _raises(tmp_path / "evilc.npz", "holds Python objects")
    np.save(tmp_path / "labels.npy", evil[:, 0], allow_pickle=True)
    with pytest.raises(InputError, match="pickle"):
        load_labels(tmp_path / "labels.npy", 2)
    assert not marker.exists()


def test_importing_io_does_not_import_torch() -> None:
    code = "import sys, sslcheck.io; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert out.stdout.strip() == "False"


def test_safetensors_null_metadata_loads_as_the_library_loads_it(tmp_path: Path) -> None:
    path = tmp_path / "z.safetensors"
    z = np.arange(12, dtype=np.float32).reshape(4, 3)
    text = json.dumps({"__metadata__": None, "za": {"dtype": "F32", "shape": [4, 3], "data_offsets": [0, 48]}})
    path.write_bytes(len(text).to_bytes(8, "little") + text.encode() + z.tobytes())
    np.testing.assert_array_equal(safetensors.numpy.load_file(path)["za"], z)
    source = open_array(path, "za")
    np.testing.assert_array_equal(np.concatenate([c.copy() for c in source.chunks(3)]), z)  # blocks are reused
