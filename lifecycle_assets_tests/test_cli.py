"""The `lifecycle` command line: init is idempotent; bad input gets one line, not a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from lifecycle_assets.config import example_config_path


def lifecycle(*args: str, env_home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LIFECYCLE_HOME"}
    if env_home is not None:
        env["LIFECYCLE_HOME"] = str(env_home)
    return subprocess.run(
        [sys.executable, "-m", "lifecycle_assets.cli", *args],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def _one_line_error(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr
    return lines[0]


def test_the_parser_loads_no_heavy_library() -> None:
    """`lifecycle --help` and every command's parsing import neither PyTorch, Dagster,
    polars, DVC, BentoML, pydantic nor PyYAML: each command imports what it needs when it
    runs (`benchmarks/cli_startup.py` times it)."""
    code = (
        "import sys; from lifecycle_assets.cli import build_parser; build_parser(); "
        "heavy = sorted({m.split('.')[0] for m in sys.modules} "
        "& {'torch', 'dagster', 'polars', 'dvc', 'bentoml', 'pydantic', 'yaml'}); "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_cli_startup_benchmark_times_every_command() -> None:
    """`benchmarks/cli_startup.py` times `--help` and each command's `--help` in fresh
    processes and judges each against the bar (its figures are not asserted: no timed test)."""
    from lifecycle_assets.cli import build_parser
    from lifecycle_assets_tests.conftest import benchmark_module

    bench = benchmark_module("cli_startup")
    listed = bench.commands()
    assert listed[0] == ["--help"]
    parser_commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert {c[0] for c in listed[1:]} == parser_commands
    result = bench.measure(1, only=[["--help"], ["models", "--help"]])
    assert [r["command"] for r in result["commands"]] == [
        "lifecycle --help",
        "lifecycle models --help",
    ]
    for row in result["commands"]:
        assert row["verdict"] in {"PASS", "MISS"} and 0 < row["median_s"] <= row["max_s"]
    assert result["missed"] == [r["command"] for r in result["commands"] if r["verdict"] == "MISS"]
    assert result["python_floor_median_s"] > 0


def test_a_slow_command_says_what_started_to_a_terminal_only(tmp_path: Path) -> None:
    """At a terminal the first line (stderr) comes before the imports and the work; piped,
    stderr stays empty, so a script sees the result alone (or one line of error)."""
    import pty

    home = tmp_path / "home"
    assert lifecycle("init", "--workdir", str(home)).returncode == 0
    args = [
        sys.executable,
        "-m",
        "lifecycle_assets.cli",
        "models",
        "verify",
        "--workdir",
        str(home),
    ]
    leader, follower = pty.openpty()
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=follower, text=True) as proc:
        os.close(follower)
        stdout, _ = proc.communicate(timeout=120)
    terminal = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        terminal += chunk
    os.close(leader)
    assert proc.returncode == 0
    assert terminal.decode().splitlines() == ["verifying every version against its registration …"]
    assert stdout.strip() == "no model versions yet"
    piped = lifecycle("models", "verify", "--workdir", str(home))
    assert (piped.returncode, piped.stderr, piped.stdout.strip()) == (
        0,
        "",
        "no model versions yet",
    )


def test_init_is_idempotent(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = lifecycle("init", "--workdir", str(home))
    assert first.returncode == 0, first.stderr
    head = subprocess.run(
        ["git", "-C", str(home / "repo"), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout
    second = lifecycle("init", "--workdir", str(home))
    assert second.returncode == 0, second.stderr
    again = subprocess.run(
        ["git", "-C", str(home / "repo"), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout
    assert head == again
    for sub in (
        "lifecycle.yaml",
        "dagster/dagster.yaml",
        "repo/.dvc",
        "repo/dvc.yaml",
        "logs",
        "repo/bin/lifecycle",
    ):
        assert (home / sub).exists(), sub
    assert (home / "dvc-remote").is_dir()
    assert oct((home / "dvc-remote").stat().st_mode & 0o777) == "0o700"


def test_wrong_config_names_the_field(tmp_path: Path) -> None:
    config = yaml.safe_load(example_config_path().read_text())
    config["windows"]["train_days"] = "ten"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    line = _one_line_error(
        lifecycle("init", "--workdir", str(tmp_path / "h"), "--config", str(bad))
    )
    assert "windows.train_days" in line and "integer" in line


def test_missing_home_says_how_to_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    line = _one_line_error(
        lifecycle(
            "materialize",
            "--workdir",
            str(missing),
            "--select",
            "ground_truth",
            "--partition",
            "2026-06-01",
        )
    )
    assert str(missing) in line and "lifecycle init" in line


def test_a_day_outside_the_partitions_is_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert lifecycle("init", "--workdir", str(home)).returncode == 0
    for day in ("2025-12-31", "2999-01-01"):
        args = ["--workdir", str(home), "--select", "ground_truth", "--partition", day]
        line = _one_line_error(lifecycle("materialize", *args))
        assert f"--partition {day}: not a day of the loop's daily partitions" in line
        assert "2026-01-01 to " in line


def test_a_copied_home_refuses_the_originals_remote_until_init(tmp_path: Path) -> None:
    """A copy keeps the original's DVC remote in its repo config: `data gc` there would
    collect the original's remote, so it is refused in one line until `lifecycle init`."""
    original, copy = tmp_path / "original", tmp_path / "copy"
    assert lifecycle("init", "--workdir", str(original)).returncode == 0
    shutil.copytree(original, copy, symlinks=True)
    line = _one_line_error(lifecycle("data", "gc", "--dry-run", "--workdir", str(copy)))
    assert str(original / "dvc-remote") in line and "lifecycle init" in line
    assert lifecycle("init", "--workdir", str(copy)).returncode == 0
    again = lifecycle("data", "gc", "--dry-run", "--workdir", str(copy))
    assert again.returncode == 0, again.stderr
    config = (copy / "repo" / ".dvc" / "config").read_text()
    assert str(copy / "dvc-remote") in config and str(original) not in config


def test_unreachable_remote_is_one_line(tmp_path: Path) -> None:
    config = yaml.safe_load(example_config_path().read_text())
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    config["versioning"]["dvc_remote"] = str(blocker / "remote")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(config))
    line = _one_line_error(
        lifecycle("init", "--workdir", str(tmp_path / "h"), "--config", str(cfg))
    )
    assert "remote" in line.lower()
