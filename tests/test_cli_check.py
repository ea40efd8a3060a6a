"""`sslcheck check`: exit codes per status, outputs written on failure, CI integrations, config."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from sslcheck.cli import app
from tests.data import sample


def run_check(runner, args, **kwargs):
    return runner.invoke(app, ["check", *args], **kwargs)


def test_healthy_passes(runner):
    res = run_check(runner, sample("healthy"))
    assert res.exit_code == 0, res.stdout
    assert "PASSED" in res.stdout


@pytest.mark.parametrize("name", ["dimensional", "complete", "unaligned"])
def test_collapsed_pairs_fail_naming_the_rule(runner, tmp_path, name):
    out = tmp_path / "scores.json"
    res = run_check(runner, [*sample(name), "--json", str(out)])
    assert res.exit_code == 1
    rule = {"dimensional": "dimensional_collapse", "complete": "complete_collapse", "unaligned": "unaligned"}[name]
    data = json.loads(out.read_text())  # written even on failure
    assert data["verdict"]["status"] == rule
    failed = [c for c in data["checks"] if c["status"] == "FAIL"]
    names = [c["name"] for c in failed]
    assert failed and names == [
        f"verdict: {rule} ({f['metric']})" for f in data["verdict"]["findings"] if f["kind"] == "fail"
    ]
    assert len(set(names)) == len(names)  # one per view where a rule fires for both
    assert all({"name", "status", "value", "threshold", "message"} == set(c) for c in data["checks"])
    assert f"verdict: {rule}" in res.stdout and "FAILED" in res.stdout


def test_user_gates_pass_fail_warn_and_strict(runner):
    args = sample("healthy")
    assert run_check(runner, [*args, "--gate", "diagnostics.za.rank_ratio >= 0.2"]).exit_code == 0
    res = run_check(runner, [*args, "--gate", "diagnostics.za.rank_ratio >= 0.99"])
    assert res.exit_code == 1 and "diagnostics.za.rank_ratio >= 0.99" in res.stdout
    assert run_check(runner, [*args, "--warn", "inputs.n > 1000000"]).exit_code == 0
    assert run_check(runner, [*args, "--warn", "inputs.n > 1000000", "--strict"]).exit_code == 1
    assert run_check(runner, [*args, "--gate", "verdict.status == healthy"]).exit_code == 0
    assert run_check(runner, [*args, "--gate", "verdict.status != complete-collapse"]).exit_code == 0


def test_absent_by_design_is_skip_and_null_is_error(runner, tmp_path):
    res = run_check(
        runner, [*sample("healthy"), "--gate", "diagnostics.pair.knn_top1 >= 0.5", "--json", str(tmp_path / "s.json")]
    )
    assert res.exit_code == 0
    checks = json.loads((tmp_path / "s.json").read_text())["checks"]
    assert [c["status"] for c in checks if "knn_top1" in c["name"]] == ["SKIP"]
    # an eigenvalue index past this D (64 for the sample pair) says how many there are
    res = run_check(
        runner, [*sample("healthy"), "--gate", "diagnostics.za.eigenvalues.999 > 0", "--json", str(tmp_path / "s.json")]
    )
    [skip] = [c for c in json.loads((tmp_path / "s.json").read_text())["checks"] if "999" in c["name"]]
    assert res.exit_code == 0 and skip["status"] == "SKIP"
    assert skip["message"] == "absent: diagnostics.za.eigenvalues has 64 entries here (indices 0-63)"
    # a constant view: its centred spectrum is undefined (null), so a gate on it is an ERROR
    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", np.ones((300, 8), np.float32))
    np.save(tmp_path / "b.npy", rng.standard_normal((300, 8)).astype(np.float32))
    res = run_check(
        runner,
        [
            str(tmp_path / "a.npy"),
            str(tmp_path / "b.npy"),
            "--gate",
            "diagnostics.za.stable_rank >= 1",
            "--json",
            str(tmp_path / "c.json"),
        ],
    )
    assert res.exit_code == 1
    checks = json.loads((tmp_path / "c.json").read_text())["checks"]
    assert [c["status"] for c in checks if "stable_rank" in c["name"]] == ["ERROR"]


def test_junit_parses_with_the_right_failures(runner, tmp_path):
    junit = tmp_path / "sslcheck.xml"
    res = run_check(runner, [*sample("dimensional"), "--junit", str(junit), "--gate", "inputs.n >= 2"])
    assert res.exit_code == 1
    root = ET.parse(junit).getroot()
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failed and all(name.startswith("verdict: dimensional_collapse (diagnostics.z") for name in failed)
    assert len(set(failed)) == len(failed)
    assert int(suite.get("failures")) == len(failed) and int(suite.get("tests")) == len(cases)
    assert "inputs.n >= 2" in [c.get("name") for c in cases]


def test_github_summary_and_annotations_only_under_actions(runner, tmp_path):
    summary = tmp_path / "summary.md"
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    res = run_check(runner, sample("complete"), env=env)
    assert res.exit_code == 1
    assert "::error title=sslcheck verdict%3A complete_collapse (diagnostics.za.l2_std_ratio)::" in res.stdout
    assert "## sslcheck: FAILED" in summary.read_text()
    plain = run_check(runner, sample("complete"), env={"GITHUB_ACTIONS": ""})
    assert "::error" not in plain.stdout


@pytest.mark.parametrize(("name", "code"), [("healthy", 0), ("complete", 1)])
def test_unwritable_step_summary_warns_and_keeps_the_gate_result(runner, tmp_path, name, code):
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(tmp_path / "no" / "summary.md")}
    res = run_check(runner, sample(name), env=env)
    assert res.exit_code == code
    assert "Warning: cannot append to $GITHUB_STEP_SUMMARY" in res.stderr and "Error" not in res.stderr


def test_summary_md_file(runner, tmp_path):
    md = tmp_path / "s.md"
    assert run_check(runner, [*sample("healthy"), "--summary-md", str(md)]).exit_code == 0
    text = md.read_text()
    assert text.startswith("## sslcheck: passed") and "| status | gate |" in text


def test_baseline_same_data_passes_and_collapse_fails(runner, tmp_path):
    base = tmp_path / "base.json"
    assert run_check(runner, [*sample("healthy"), "--json", str(base)]).exit_code == 0
    same = run_check(
        runner,
        [
            *sample("healthy"),
            "--baseline",
            str(base),
            "--max-drop",
            "diagnostics.za.effective_rank=5%",
            "--max-rise",
            "losses.vicreg.whole_set.total=10%",
        ],
    )
    assert same.exit_code == 0
    out = tmp_path / "after.json"
    bad = run_check(
        runner,
        [
            *sample("dimensional"),
            "--baseline",
            str(base),
            "--json",
            str(out),
            "--max-drop",
            "diagnostics.za.effective_rank=20%",
        ],
    )
    assert bad.exit_code == 1
    before = json.loads(base.read_text())["diagnostics"]["za"]["effective_rank"]
    after = json.loads(out.read_text())["diagnostics"]["za"]["effective_rank"]
    [drop] = [c for c in json.loads(out.read_text())["checks"] if "max drop" in c["name"]]
    assert drop["status"] == "FAIL" and drop["value"] == after
    assert "diagnostics.za.effective_rank" in drop["message"]
    assert f"{after:.6g}" in drop["message"] and f"{before:.6g}" in drop["message"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gate", "diagnostics.za.rank_ratio"], "expected 'PATH OP VALUE'"),
        (["--gate", "diagnostics.za.rank_rato >= 0.2"], "did you mean 'diagnostics.za.rank_ratio'"),
        (["--gate", "diagnostics.za.rank_ratio >= high"], "is not a number"),
        # a misspelt status had made the gate pass on every input
        (["--gate", "verdict.status != complete_colapse"], "one of healthy, complete_collapse, dimensional_collapse"),
        (["--gate", "verdict.status != complete_colapse"], "(did you mean 'complete_collapse'?)"),
        (["--gate", "verdict.status >= healthy"], "verdict.status takes == or !="),
        (["--gate", "verdict.status == 1"], "verdict.status takes == or !="),
        (["--warn", "losses.vicreg.whole_set.totl < 1"], "did you mean 'losses.vicreg.whole_set.total'"),
        (["--max-drop", "diagnostics.za.effective_rank=20%"], "need --baseline"),
        (["--max-drop", "diagnostics.za.effective_rank"], "expected 'PATH=P%'"),
        (["--baseline", "missing.json", "--max-drop", "inputs.n=1%"], "no such file"),
        (["--gate", "diagnostics.za.rank_ratio >= nan"], "'nan' is not a finite number"),
        (["--gate", "diagnostics.za.rank_ratio >= 1e999", "--json", "s.json"], "'1e999' is not a finite number"),
        (["--warn", "diagnostics.za.rank_ratio < -inf"], "is not a finite number"),
        (["--gate", "diagnostics.za.rank_ratio >= "], "expected 'PATH OP VALUE'"),
        (["--gate", "diagnostics.za.rank_ratio >= =1"], "expected 'PATH OP VALUE'"),
    ],
)
def test_malformed_gates_are_usage_errors(runner, args, message):
    res = run_check(runner, [*sample("healthy"), *args])
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.startswith("Error: ") and message in res.stderr


def test_schema_version_can_be_gated(runner):
    assert run_check(runner, [*sample("healthy"), "--gate", "schema_version == 1"]).exit_code == 0
    assert run_check(runner, [*sample("healthy"), "--gate", "schema_version > 1"]).exit_code == 1


@pytest.mark.parametrize(("value", "message"), [("NaN", "not a finite number (nan)"), ('"high"', "('high')")])
def test_baseline_value_that_is_not_a_finite_number_is_a_usage_error(runner, tmp_path, value, message):
    base = tmp_path / "base.json"
    assert run_check(runner, [*sample("healthy"), "--json", str(base)]).exit_code == 0
    data = json.loads(base.read_text())
    data["diagnostics"]["za"]["rank_ratio"] = "@"
    base.write_text(json.dumps(data).replace('"@"', value))  # json.dumps would refuse NaN
    res = run_check(
        runner, [*sample("healthy"), "--baseline", str(base), "--max-drop", "diagnostics.za.rank_ratio=20%"]
    )
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.startswith("Error: --baseline: the value at diagnostics.za.rank_ratio") and message in res.stderr


def test_config_precedence(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "s.json"
    (tmp_path / "pyproject.toml").write_text(
        '[tool.sslcheck]\nflavor = "lightly"\nbatch_size = 128\ngates = ["inputs.n >= 2"]\n'
    )
    assert run_check(runner, [*sample("healthy"), "--json", str(out)]).exit_code == 0
    data = json.loads(out.read_text())
    assert data["settings"]["flavor"] == "lightly" and data["settings"]["batch_size"] == 128
    assert any(c["name"] == "inputs.n >= 2" for c in data["checks"])
    # a flag beats the config
    assert run_check(runner, [*sample("healthy"), "--flavor", "solo-learn", "--json", str(out)]).exit_code == 0
    assert json.loads(out.read_text())["settings"]["flavor"] == "solo-learn"
    # --config beats the pyproject table; sslcheck.toml is used when no pyproject table exists
    (tmp_path / "other.toml").write_text('flavor = "edifice"\n')
    run_check(runner, [*sample("healthy"), "--config", str(tmp_path / "other.toml"), "--json", str(out)])
    assert json.loads(out.read_text())["settings"]["flavor"] == "edifice"
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "sslcheck.toml").write_text('flavor = "quadra"\n[thresholds]\ndimensional_rank_ratio_centered = 0.01\n')
    res = run_check(runner, [*sample("dimensional"), "--json", str(out), "-q"])
    assert json.loads(out.read_text())["settings"]["flavor"] == "quadra"
    assert res.exit_code == 0  # the threshold from the config lets rank 4 / 64 pass


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('flavour = "lightly"\n', "unknown config key 'flavour' (did you mean 'flavor'?)"),
        ("batch_size = [1]\n", "must be an integer or a string, not list"),
        ("flavor = \n", "not valid TOML"),
        ("[thresholds]\ndimensional_rank_ratio = 0.1\n", "unknown threshold"),
        ("[thresholds]\ndimensional_rank_ratio_centered = true\n", "True is not a number"),
        ("threads = true\n", "'threads' must be an integer, not bool"),
        ("gates = [5]\n", "'gates' must be a list of strings"),
        ('loss = ["vicreg", 1]\n', "'loss' must be a list of strings"),
        ("threads = 0\n", "--threads 0: expected a positive number"),
        ("threads = 100000\n", "--threads 100000: at most"),
    ],
)
def test_config_errors(runner, tmp_path, monkeypatch, content, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sslcheck.toml").write_text(content)
    res = run_check(runner, sample("healthy"))
    assert res.exit_code == 2 and message in res.stderr


def test_config_that_is_not_utf8_is_not_valid_toml(runner, tmp_path):
    cfg = tmp_path / "bin.toml"
    cfg.write_bytes(b"\xff\xfe flavor")
    res = run_check(runner, [*sample("healthy"), "--config", str(cfg)])
    assert res.exit_code == 2 and "not valid TOML" in res.stderr and "internal error" not in res.stderr


def test_subprocess_exit_codes():
    """The installed entry point, as CI calls it."""
    cmd = [sys.executable, "-m", "sslcheck", "check", "-q"]
    assert subprocess.run([*cmd, *sample("healthy")], capture_output=True, check=False).returncode == 0
    assert subprocess.run([*cmd, *sample("complete")], capture_output=True, check=False).returncode == 1
    bad = subprocess.run(
        [*cmd, str(Path("nope.npy")), str(Path("nope2.npy"))], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 2 and bad.stderr.startswith("Error: ")
