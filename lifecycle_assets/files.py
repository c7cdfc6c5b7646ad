"""Whole-file replacement: a reader sees a file's old content or its new content, never part.

Every file the loop rewrites in place (manifests, decision records, the registry's JSON, the
clock, the serving fence, the IO manager's values, the replay report) goes through
`replacing`: the new content is written to a temporary file beside the target (same
directory, so the rename never crosses a file system; named per process and thread, so two
writers never share one) and renamed over it with `os.replace`. An error while writing
removes the temporary file and leaves the target as it was. A directory (a DVC stage's
output) is swapped by `replace_tree`. A reader notices a replacement by `signature`.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# (inode, mtime ns, size) of a file; None when there is none.
Signature = tuple[int, int, int] | None


def signature(path: Path) -> Signature:
    """What changes when `path` is replaced (a rename brings a new inode) or rewritten: one
    `stat`, for readers that look often and reload only on a change."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


@contextmanager
def replacing(path: Path, *, durable: bool = False) -> Iterator[Path]:
    """A temporary path to write `path`'s new content to; it replaces `path` when the block
    ends without an error. `durable`: the content and the rename are flushed to disk (fsync
    of the file, then of the directory) before this returns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        yield tmp
        if durable:
            _fsync(tmp, os.O_RDONLY)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


def write_atomic(path: Path, data: str | bytes, *, durable: bool = False) -> None:
    """Replace `path`'s content with `data` (text is written as UTF-8)."""
    with replacing(path, durable=durable) as tmp:
        if isinstance(data, str):
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(data)
        else:
            with open(tmp, "wb") as fh:
                fh.write(data)


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_tree(new: Path, target: Path) -> None:
    """Put `new` (a file or a directory, beside `target`) at `target`, replacing what was
    there. A file is replaced atomically. A directory cannot be renamed over one, so the old
    one is moved aside first and removed once the new one is in place: `target` is missing
    only between two renames, and if the second fails the old one is put back."""
    if not target.is_dir() or target.is_symlink():
        if new.is_dir() and (target.exists() or target.is_symlink()):
            target.unlink()  # a file or a link where the directory goes
        os.replace(new, target)
        return
    aside = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.old")
    shutil.rmtree(aside, ignore_errors=True)
    os.replace(target, aside)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(aside, target)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def write_json(path: Path, data: Any) -> None:
    """`data` as indented JSON with sorted keys (values JSON lacks, like dates, as text): a
    file written once into a staging place, such as a stage's output before it is swapped in."""
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
