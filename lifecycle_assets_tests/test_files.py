"""Whole-file replacement: the old content or the new, never part of it, nothing left behind."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from lifecycle_assets.files import replace_tree, replacing, write_atomic


def test_write_atomic_replaces_text_and_bytes(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "record.json"
    write_atomic(target, "first")
    write_atomic(target, "zweite ✓", durable=True)
    assert target.read_text(encoding="utf-8") == "zweite ✓"
    write_atomic(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in target.parent.iterdir()) == ["record.json"]


def test_an_error_while_writing_leaves_the_old_content(tmp_path: Path) -> None:
    target = tmp_path / "value.parquet"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"), replacing(target) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["value.parquet"]


def test_concurrent_writers_never_share_a_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "fence.json"
    texts = [f"writer {i} " * 2000 for i in range(8)]
    barrier = threading.Barrier(len(texts))

    def write(text: str) -> None:
        barrier.wait()
        for _ in range(20):
            write_atomic(target, text)

    threads = [threading.Thread(target=write, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert target.read_text() in texts  # one writer's whole content
    assert [p.name for p in tmp_path.iterdir()] == ["fence.json"]


def test_replace_tree_swaps_a_directory_and_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "train_split"
    target.mkdir()
    (target / "data.parquet").write_text("old")
    new = tmp_path / "train_split.staging"
    new.mkdir()
    (new / "data.parquet").write_text("new")
    replace_tree(new, target)
    assert (target / "data.parquet").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train_split"]
    # a file over a file, and a directory where a file was
    (tmp_path / "report.json").write_text("old")
    (tmp_path / "report.json.staging").write_text("new")
    replace_tree(tmp_path / "report.json.staging", tmp_path / "report.json")
    assert (tmp_path / "report.json").read_text() == "new"
    (tmp_path / "was_a_file.staging").mkdir()
    (tmp_path / "was_a_file").write_text("x")
    replace_tree(tmp_path / "was_a_file.staging", tmp_path / "was_a_file")
    assert (tmp_path / "was_a_file").is_dir()


def test_a_failed_tree_swap_puts_the_old_directory_back(tmp_path: Path) -> None:
    target = tmp_path / "models"
    target.mkdir()
    (target / "model.json").write_text("old")
    with pytest.raises(FileNotFoundError):
        replace_tree(tmp_path / "missing.staging", target)
    assert (target / "model.json").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["models"]
