"""`sslcheck score`: every output format carries the result's numbers; errors are one line."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sslcheck.cli import app
from sslcheck.engine import Settings, evaluate_files
from sslcheck.render.flat import flatten
from sslcheck.render.sections import fmt
from tests.data import sample

CONTRACT_PATHS = [
    "schema_version",
    "sslcheck_version",
    "inputs.za.path",
    "inputs.za.shape",
    "inputs.za.dtype",
    "inputs.zb.path",
    "inputs.zb.shape",
    "inputs.zb.dtype",
    "inputs.n",
    "inputs.d",
    "settings.batch_size",
    "settings.drop_last",
    "settings.dtype",
    "settings.device",
    "settings.flavor",
    "verdict.status",
    "verdict.reasons",
]
TERMS = {
    "vicreg": ["invariance", "variance", "covariance", "total"],
    "barlow": ["on_diagonal", "off_diagonal", "total"],
    "nt_xent": ["total"],
}


def get(data: dict, path: str):
    for part in path.split("."):
        data = data[part]
    return data


def score_json(runner, args: list[str]) -> dict:
    res = runner.invoke(app, ["score", *args, "--format", "json"])
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def test_json_follows_the_contract(runner, pair):
    data = score_json(runner, list(pair))
    for path in CONTRACT_PATHS:
        get(data, path)
    assert data["schema_version"] == 1
    assert data["inputs"]["n"] == 600 and data["inputs"]["d"] == 24
    assert data["inputs"]["za"]["shape"] == [600, 24] and data["inputs"]["za"]["dtype"] == "float32"
    assert data["settings"]["batch_size"] == 256 and data["settings"]["drop_last"] is True
    for loss, terms in TERMS.items():
        block = data["losses"][loss]
        assert block["flavor"] == "paper" and block["n_batches"] == 2
        for term in terms:
            assert isinstance(block["whole_set"][term], float)
            assert set(block["per_batch"][term]) == {"mean", "std", "min", "max"}
    assert data["verdict"]["status"] in ("healthy", "dimensional_collapse", "complete_collapse", "unaligned")


def test_json_equals_the_library_result(runner, pair):
    """The CLI is a view of `evaluate_files`: the same numbers, bit for bit."""
    data = score_json(runner, [*pair, "--dtype", "float64", "--batch-size", "100", "--flavor", "lightly"])
    expected = evaluate_files(*pair, Settings(dtype="float64", batch_size=100, flavor="lightly")).to_dict()
    assert data["losses"] == expected["losses"]
    assert data["diagnostics"] == expected["diagnostics"]
    assert data["verdict"] == expected["verdict"]


def test_batch_size_all_is_one_batch_equal_to_whole_set(runner, pair):
    data = score_json(runner, [*pair, "--batch-size", "all", "--dtype", "float64"])
    assert data["settings"]["batch_size"] == 600
    for loss in ("vicreg", "barlow", "nt_xent"):
        block = data["losses"][loss]
        assert block["n_batches"] == 1
        for term, whole in block["whole_set"].items():
            pb = block["per_batch"][term]
            assert pb["mean"] == pb["min"] == pb["max"] == whole and pb["std"] == 0


def test_set_overrides_are_echoed_and_applied(runner, pair):
    base = score_json(runner, [*pair, "--dtype", "float64"])
    data = score_json(runner, [*pair, "--dtype", "float64", "--set", "vicreg.mu=50", "--set", "nt-xent.tau=0.2"])
    assert data["losses"]["vicreg"]["params"]["mu"] == 50
    assert data["losses"]["nt_xent"]["params"]["tau"] == 0.2
    v0, v1 = base["losses"]["vicreg"]["whole_set"], data["losses"]["vicreg"]["whole_set"]
    assert v1["variance"] == v0["variance"]  # terms are unweighted
    assert v1["total"] == pytest.approx(v0["total"] + 25 * v0["variance"], rel=1e-12)


def test_table_shows_every_term_of_the_json(runner, pair):
    data = score_json(runner, list(pair))
    res = runner.invoke(app, ["score", *pair])
    assert res.exit_code == 0
    for loss, terms in TERMS.items():
        for term in terms:
            assert fmt(data["losses"][loss]["whole_set"][term]) in res.stdout
    assert "Verdict:" in res.stdout and "N = 600, D = 24, B = 256" in res.stdout


def test_csv_round_trips_to_the_json(runner, pair):
    data = score_json(runner, list(pair))
    res = runner.invoke(app, ["score", *pair, "--format", "csv"])
    frame = pd.read_csv(io.StringIO(res.stdout), keep_default_na=False)
    rows = dict(zip(frame["path"], frame["value"], strict=True))
    for path, value in flatten(data):
        if isinstance(value, float):
            assert float(rows[path]) == pytest.approx(value, rel=1e-15, abs=0)


def test_markdown_has_tables_and_verdict(runner, pair):
    res = runner.invoke(app, ["score", *pair, "--format", "markdown"])
    assert res.exit_code == 0
    assert res.stdout.startswith("# sslcheck score")
    assert "| loss | term |" in res.stdout and "**Verdict:" in res.stdout


def test_output_file_is_written_and_stdout_is_empty(runner, pair, tmp_path):
    out = tmp_path / "scores.json"
    res = runner.invoke(app, ["score", *pair, "--format", "json", "-o", str(out), "-q"])
    assert res.exit_code == 0 and res.stdout == ""
    assert json.loads(out.read_text())["schema_version"] == 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_single_path_pt_with_both_views(runner):
    pt = score_json(runner, [str(Path(sample("healthy")[0]).parent / "healthy.pt"), "--dtype", "float64"])
    npy = score_json(runner, [*sample("healthy"), "--dtype", "float64"])
    assert pt["losses"] == npy["losses"]


def test_flavor_all_fills_by_flavor(runner, pair):
    data = score_json(runner, [*pair, "--flavor", "all"])
    by = data["losses"]["vicreg"]["by_flavor"]
    assert set(by) == {"paper", "lightly", "solo-learn", "tf-similarity", "quadra", "edifice"}
    assert data["settings"]["flavor"] == "all"
    assert data["losses"]["vicreg"]["whole_set"] == by["paper"]["whole_set"]
    assert by["solo-learn"]["whole_set"]["variance"] == pytest.approx(2 * by["paper"]["whole_set"]["variance"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--loss", "simclr2"], "unknown loss 'simclr2'"),
        (["--flavor", "torchvision"], "unknown flavor 'torchvision'"),
        (["--batch-size", "0"], "--batch-size 0"),
        (["--batch-size", "1"], "at least 2 rows"),
        (["--batch-size", "lots"], "expected an integer >= 2 or 'all'"),
        (["--set", "vicreg.mu"], "expected LOSS.PARAM=VALUE"),
        (["--set", "vicreg.rho=1"], "unknown parameter"),
        (["--set", "vicreg.mu=abc"], "expected a number"),
        (["--set", "nt_xent.tau=0"], "must be > 0"),
        (["--set", "barlow.norm=layer"], "expected one of"),
        (["--format", "yaml"], "--format yaml"),
        (["--dtype", "float16"], "--dtype float16"),
        (["--device", "tpu"], "--device tpu"),
        (["--bogus"], "No such option"),
        (["--threads", "-1"], "--threads -1: expected a positive number"),
        (["--threads", "0"], "--threads 0: expected a positive number"),
        (["--threads", "100000"], "--threads 100000: at most"),  # libgomp fails to start them (a segfault)
        (["--set", "mmcr.lambda=x"], "--set mmcr.lambda=x: expected a number"),  # mmcr is not selected
        (["--set", "byol.x=1"], "byol has no parameters"),
    ],
)
def test_bad_options_get_one_error_line(runner, pair, args, message):
    res = runner.invoke(app, ["score", *pair, *args])
    assert res.exit_code == 2
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert message in lines[0]


def test_help_everywhere_ends_with_an_example(runner):
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    commands = [c for c in ("score", "check", "report", "inspect", "flavors") if f"  {c} " in res.stdout]
    assert {"score", "check"} <= set(commands)
    for command in commands:
        text = runner.invoke(app, [command, "--help"]).stdout
        assert "Example:" in text, command


def test_no_arguments_prints_help_and_version(runner):
    assert "Usage:" in runner.invoke(app, []).stdout
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout.strip() == "sslcheck 0.1.0"


def _imports_after(argv: list[str]) -> set[str]:
    code = (
        "import sys\nfrom sslcheck.cli import main\nsys.argv = ['sslcheck', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(' '.join(m for m in ('torch', 'pandas', 'matplotlib') if m in sys.modules), file=sys.stderr)\n"
    )
    res = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=False)
    return set(res.stderr.strip().splitlines()[-1].split()) if res.stderr.strip() else set()


def test_help_imports_no_torch():
    assert _imports_after(["--help"]) == set()
    assert _imports_after(["score", "--help"]) == set()


def test_score_json_imports_neither_pandas_nor_matplotlib(pair):
    assert _imports_after(["score", *pair, "--format", "json", "-q"]) == {"torch"}


def test_stdout_carries_only_json_and_warnings_go_to_stderr(pair):
    cmd = [sys.executable, "-m", "sslcheck", "score", *pair, "--format", "json", "--flavor", "quadra"]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    data = json.loads(res.stdout)
    assert data["warnings"] and "quadra" in res.stderr
    quiet = subprocess.run([*cmd, "-q"], capture_output=True, text=True, check=True)
    assert quiet.stderr == ""


def test_nan_input_is_an_input_error(runner, tmp_path):
    za = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
    za[17, 2] = np.nan
    za[30, 0] = np.inf
    np.save(tmp_path / "a.npy", za)
    np.save(tmp_path / "b.npy", np.ones_like(za))
    res = runner.invoke(app, ["score", str(tmp_path / "a.npy"), str(tmp_path / "b.npy")])
    assert res.exit_code == 2 and res.stdout == ""
    assert "2 NaN/Inf values; the first in row 17" in res.stderr


def test_flavor_names_take_any_case_and_underscores(runner, pair):
    res = runner.invoke(app, ["score", *pair, "--flavor", "Solo_Learn", "--format", "json"])
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["settings"]["flavor"] == "solo-learn"
    assert data["losses"]["vicreg"]["flavor"] == "solo-learn"


@pytest.mark.parametrize("where", ["", ".", "folder", "/proc/sslcheck.json"])
def test_output_path_that_cannot_be_written_is_one_error_line(runner, pair, tmp_path, where):
    if where.startswith("/proc") and not Path("/proc").is_dir():
        pytest.skip("no /proc")
    target = str(tmp_path) if where == "folder" else where
    res = runner.invoke(app, ["score", *pair, "-o", target])
    assert res.exit_code == 2 and res.stdout == ""
    [line] = res.stderr.strip().splitlines()
    assert line.startswith("Error: ") and "internal error" not in line, line
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_output_through_a_symlink_replaces_its_target_and_keeps_the_link(runner, pair, tmp_path):
    real, link = tmp_path / "real.json", tmp_path / "link.json"
    real.write_text("old")
    link.symlink_to(real.name)
    res = runner.invoke(app, ["score", *pair, "--format", "json", "-o", str(link), "-q"])
    assert res.exit_code == 0, res.stderr
    assert link.is_symlink() and json.loads(real.read_text())["schema_version"] == 1


def test_output_to_a_pipe_is_written_in_place_not_replaced_by_a_file(runner, pair, tmp_path):
    """-o /dev/null, /dev/stdout or a named pipe: renaming a temporary file over it would put a
    regular file in its place (as root, over /dev/null itself)."""
    import os
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    res = runner.invoke(app, ["score", *pair, "--format", "json", "-o", str(fifo), "-q"])
    reader.join(timeout=60)
    assert res.exit_code == 0, res.stderr
    assert fifo.is_fifo() and json.loads(got[0])["schema_version"] == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(("target", "stream"), [("-", "stdout"), ("/dev/stdout", "stdout"), ("/dev/stderr", "stderr")])
def test_output_to_this_process_streams_goes_to_them(runner, pair, target, stream):
    res = runner.invoke(app, ["score", *pair, "--format", "json", "-o", target, "-q"])
    assert res.exit_code == 0, res.stderr
    assert json.loads(getattr(res, stream))["schema_version"] == 1


def test_output_to_dev_stdout_appends_to_a_redirected_log(pair, tmp_path):
    """`-o /dev/stdout >> ci.log`: written to the descriptor the process holds, not by reopening
    /proc/self/fd/1 (which truncates the log) or renaming a file over it (which replaces it)."""
    log = tmp_path / "ci.log"
    log.write_text("earlier line\n")
    with open(log, "ab") as out:
        cmd = [sys.executable, "-m", "sslcheck", "score", *pair, "-f", "csv", "-o", "/dev/stdout", "-q"]
        subprocess.run(cmd, stdout=out, check=True)
    text = log.read_text()
    assert text.startswith("earlier line\npath,value\n") and "verdict.status" in text


def test_output_into_a_symlink_loop_is_refused(runner, pair, tmp_path):
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    res = runner.invoke(app, ["score", *pair, "-o", str(tmp_path / "a")])
    assert res.exit_code == 2 and res.stderr.strip().endswith("a: a symlink loop")
    assert (tmp_path / "a").is_symlink()


@pytest.mark.parametrize("command", ["score", "check", "report"])
def test_an_output_that_cannot_be_written_fails_before_the_pass(runner, pair, tmp_path, monkeypatch, command):
    """Checked before the evaluation (which is never called) and before any output is written:
    `check --json ok.json --junit BAD` leaves no ok.json behind."""
    from sslcheck import engine

    def never(*args, **kwargs):
        raise AssertionError("evaluated before the output was checked")

    monkeypatch.setattr(engine, "evaluate_files", never)
    (tmp_path / "file").write_text("")
    bad = str(tmp_path / "file" / "x.json")  # under a regular file: no such folder can exist
    args = {
        "score": ["-o", bad],
        "check": ["--json", str(tmp_path / "ok.json"), "--junit", bad],
        "report": ["-o", bad],
    }[command]
    res = runner.invoke(app, [command, *pair, *args])
    assert res.exit_code == 2 and res.stdout == ""
    [line] = res.stderr.strip().splitlines()
    assert line.startswith("Error: ") and "is not a folder" in line, line
    assert not (tmp_path / "ok.json").exists()


def test_a_file_the_system_refuses_is_named_not_an_internal_error(runner, pair, monkeypatch):
    from sslcheck import engine

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "za.npy")

    monkeypatch.setattr(engine, "open_pair", refuse)
    res = runner.invoke(app, ["score", *pair])
    assert res.exit_code == 2 and res.stderr == "Error: za.npy: Permission denied\n"


def test_unreadable_file_is_an_input_error(runner, pair, tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    locked = tmp_path / "locked.npy"
    locked.write_bytes(Path(pair[0]).read_bytes())
    locked.chmod(0)
    res = runner.invoke(app, ["score", str(locked), pair[1]])
    assert res.exit_code == 2 and "locked.npy" in res.stderr and "internal error" not in res.stderr


def test_one_path_with_key_is_a_usage_error(runner, tmp_path):
    x = np.ones((8, 3), np.float32)
    np.savez(tmp_path / "pair.npz", za=x, zb=x)
    res = runner.invoke(app, ["score", str(tmp_path / "pair.npz"), "--key", "za"])
    assert res.exit_code == 2 and "--key-a and --key-b" in res.stderr


@pytest.mark.parametrize(
    ("n", "b", "drop_last", "text"),
    [
        (600, 256, True, "B = 256 (last 88 rows dropped)"),  # 600 - 2 * 256
        (513, 256, True, "B = 256 (last 1 row dropped)"),
        (512, 256, True, "B = 256"),
        (600, 256, False, "B = 256"),
        (64, 64, True, "B = 64"),  # B >= N: one batch, nothing dropped
    ],
)
def test_batch_text_names_the_rows_dropped(n, b, drop_last, text):
    from sslcheck.render.sections import batch_text

    assert batch_text(n, b, drop_last) == text


@pytest.mark.parametrize(
    ("command", "case", "code"),
    [
        ("score", "healthy", 0),
        ("check", "healthy", 0),
        ("check", "complete", 1),
        ("inspect", "healthy", 0),
        ("--help", "", 0),
        ("--version", "", 0),
    ],
)
def test_a_reader_that_stops_reading_does_not_change_the_exit_code(command, case, code):
    """`sslcheck check ... | head -1` under `set -o pipefail`: click and rich exit 1 on a closed
    stdout, the code of a failed gate; sslcheck keeps the command's own code, and says nothing."""
    files = [] if not case else sample(case)[:1] if command == "inspect" else sample(case)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sslcheck", command, *files], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # long before the result is printed (importing torch alone takes ~1 s)
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == code and err == b""


@pytest.mark.parametrize("command", ["score", "check", "report"])
def test_ctrl_c_during_the_pass_is_one_line_and_exit_130(runner, pair, tmp_path, monkeypatch, command):
    from sslcheck import engine

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "evaluate_files", interrupted)
    extra = ["-o", str(tmp_path / "report")] if command == "report" else []
    res = runner.invoke(app, [command, *pair, *extra])
    assert res.exit_code == 130 and res.stdout == "" and res.stderr == "Error: interrupted\n"
    assert not (tmp_path / "report").exists()


def test_a_closed_stderr_never_makes_check_pass():
    """Only a closed stdout keeps the command's code: when stderr's reader goes, the warning
    written there fails before the gates are evaluated, and check must not exit 0 (review)."""
    files = [sample("complete")[0]] * 2  # the same array twice: a warning on stderr first
    proc = subprocess.Popen(
        [sys.executable, "-m", "sslcheck", "check", *files], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stderr.close()
    proc.stdout.read()
    assert proc.wait(timeout=120) == 1


@pytest.mark.parametrize("target", ["-", "/dev/stdout"])
def test_output_to_stdout_into_a_closed_pipe_exits_0(target):
    """`score -o - | head` is a closed stdout like any other (exit 0), not a file that cannot be
    written (exit 2)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sslcheck", "score", *sample("healthy"), "-f", "json", "-o", target, "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0 and err == b""
