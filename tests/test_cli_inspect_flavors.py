"""`sslcheck inspect` statistics against numpy; `sslcheck flavors` against spec/losses.md's tables."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sslcheck.cli import app


def inspect_json(runner, *args: str) -> list[dict]:
    res = runner.invoke(app, ["inspect", *args, "--format", "json"])
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)["arrays"]


def test_inspect_statistics_equal_numpy(runner, tmp_path):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((20000, 12)) * np.linspace(0.5, 3, 12) + 5).astype(np.float32)
    x[:, 4] = 2.0  # a dead (constant) dimension
    np.save(tmp_path / "x.npy", x)
    [info] = inspect_json(runner, str(tmp_path / "x.npy"))
    x64 = x.astype(np.float64)
    std = x64.std(0, ddof=1)
    assert info["shape"] == [20000, 12] and info["dtype"] == "float32" and info["nbytes"] == x.nbytes
    assert info["nan"] == 0 and info["inf"] == 0
    st = info["stats"]
    assert st["std_min"] == pytest.approx(std.min(), abs=1e-12)
    assert st["std_median"] == pytest.approx(np.median(std), rel=1e-12)
    assert st["std_max"] == pytest.approx(std.max(), rel=1e-12)
    assert st["dead_dims"] == 1
    assert st["row_norm_mean"] == pytest.approx(np.linalg.norm(x64, axis=1).mean(), rel=1e-12)
    assert st["mean_abs_column_mean"] == pytest.approx(np.abs(x64.mean(0)).mean(), rel=1e-12)
    assert (st["min"], st["max"]) == (float(x.min()), float(x.max()))


def test_inspect_counts_nan_and_inf_and_lists_container_keys(runner, tmp_path):
    x = np.zeros((10, 3), np.float32)
    x[2, 1], x[5, 0], x[7, 2] = np.nan, np.inf, -np.inf
    np.savez(tmp_path / "c.npz", first=x, second=np.ones((4, 2), np.float64))
    infos = inspect_json(runner, str(tmp_path / "c.npz"))
    assert [(i["key"], i["shape"], i["nan"], i["inf"]) for i in infos] == [
        ("first", [10, 3], 1, 2),
        ("second", [4, 2], 0, 0),
    ]
    assert infos[0]["stats"] is None and "NaN/Inf" in infos[0]["notes"][0]
    only = inspect_json(runner, str(tmp_path / "c.npz"), "--key", "second")
    assert [i["key"] for i in only] == ["second"]


@pytest.mark.parametrize("suffix", ["npz", "pt"])
def test_inspect_lists_a_container_member_that_is_not_an_embedding(runner, tmp_path, suffix):
    x, labels = np.ones((6, 3), np.float32), np.arange(6) % 2
    path = tmp_path / f"c.{suffix}"
    if suffix == "npz":
        np.savez(path, za=x, labels=labels)
    else:
        torch.save({"za": torch.from_numpy(x), "labels": torch.from_numpy(labels)}, path)
    infos = {i["key"]: i for i in inspect_json(runner, str(path))}
    assert infos["za"]["shape"] == [6, 3]
    assert infos["labels"]["shape"] is None and "not an embedding" in infos["labels"]["notes"][0]
    assert "int64" in infos["labels"]["notes"][0]
    table = runner.invoke(app, ["inspect", str(path)])
    assert table.exit_code == 0 and f"c.{suffix}[labels]" in table.stdout
    # a container with no embedding at all is an error, naming its member
    np.savez(tmp_path / "only.npz", labels=labels, ids=labels)
    res = runner.invoke(app, ["inspect", str(tmp_path / "only.npz")])
    assert res.exit_code == 2 and "only.npz[labels]" in res.stderr


def test_inspect_table_and_pt_keys(runner, tmp_path):
    torch.save({"za": torch.ones(3, 2), "zb": torch.zeros(3, 2)}, tmp_path / "p.pt")
    res = runner.invoke(app, ["inspect", str(tmp_path / "p.pt")])
    assert res.exit_code == 0
    assert "p.pt[za]" in res.stdout and "p.pt[zb]" in res.stdout


def test_inspect_bad_file_is_one_error_line(runner, tmp_path):
    (tmp_path / "t.npy").write_text("not numpy")
    res = runner.invoke(app, ["inspect", str(tmp_path / "t.npy")])
    assert res.exit_code == 2 and res.stderr.startswith("Error: ") and res.stdout == ""


def test_flavors_json_matches_the_spec_tables(runner):
    res = runner.invoke(app, ["flavors", "--format", "json"])
    assert res.exit_code == 0
    data = json.loads(res.stdout)
    v, b, x = data["vicreg"], data["barlow"], data["nt_xent"]
    assert {f: e["params"]["var_views"] for f, e in v.items()} == {
        "paper": "mean",
        "lightly": "mean",
        "solo-learn": "sum",
        "quadra": "sum",
        "tf-similarity": "mean",
        "edifice": "sum",
    }
    assert {f: e["params"]["var_ddof"] for f, e in v.items() if e["params"]["var_ddof"] == 0} == {
        "tf-similarity": 0,
        "edifice": 0,
    }
    assert b["paper"]["params"]["lambda"] == 0.0051 and b["lightly"]["params"]["lambda"] == 5e-3
    assert b["solo-learn"]["params"]["scale"] == 0.024 and b["tf-similarity"]["params"]["margin"] == 1e-12
    assert b["quadra"]["params"]["quadra_bug"] is True and b["edifice"]["params"]["eps"] == 1e-4
    assert {f: e["params"]["tau"] for f, e in x.items()} == {
        "paper": 0.1,
        "lightly": 0.5,
        "solo-learn": 0.1,
        "quadra": 1.0,
        "tf-similarity": 0.05,
        "edifice": 0.5,
    }
    assert x["paper"]["params"]["reduction"] == "sum_directions" and x["edifice"]["params"]["normalize"] == "nx"
    assert all(e["source"] for loss in data.values() for e in loss.values())


def test_flavors_table(runner):
    res = runner.invoke(app, ["flavors"])
    assert res.exit_code == 0
    assert "solo-learn" in res.stdout and "google-research/simclr" in res.stdout
