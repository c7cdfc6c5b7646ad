"""The serving benchmark's compiled load generator: Debian's `wrk` (`apt-get install wrk`),
driven by a small Lua script. A Python client spends tens of microseconds of interpreter time
per request on the same two cores as the servers it loads; `wrk` spends a few, so the
servers' own costs decide the figures.

The script POSTs pre-built JSON bodies in turn (no per-request work in Lua), counts the
answers outside 2xx, and prints one `WRK_RESULT {...}` line from `done()`: `parse_wrk` reads
that line and ignores wrk's own human-readable report around it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

INSTALL = "apt-get install wrk"
MARKER = "WRK_RESULT "
SOCKET_ERRORS = ("connect", "read", "write", "timeout")

# args: [1] a file of bodies, one a line; [2] the path. Each thread keeps its own count of
# non-2xx answers (wrk's `summary.errors.status` counts only status > 399); `done()` runs in
# the main Lua state and sums them through the thread handles `setup()` collected.
LUA = r"""
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non_2xx = 0
  prepared = {}
  local headers = {["Content-Type"] = "application/json"}
  for line in io.lines(args[1]) do
    prepared[#prepared + 1] = wrk.format("POST", args[2], headers, line)
  end
  if #prepared == 0 then
    error("no request bodies in " .. args[1])
  end
  nth = 0
end

function request()
  nth = nth % #prepared + 1
  return prepared[nth]
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non_2xx = non_2xx + 1
  end
end

function done(summary, latency, requests)
  local non = 0
  for _, thread in ipairs(threads) do
    non = non + thread:get("non_2xx")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "non_2xx": %d, "connect": %d, '
      .. '"read": %d, "write": %d, "timeout": %d, "p50_us": %.1f, "p99_us": %.1f}\n',
    summary.requests, summary.duration, non, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class LoadSummary:
    """One closed-loop load run, whichever client ran it."""

    seconds: float
    ok: int
    errors: dict[str, int] = field(default_factory=dict)  # "non-2xx", "read", "503", ...
    p50_us: float = float("nan")
    p99_us: float = float("nan")

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


def wrk_command(
    url: str, *, path: str, seconds: float, connections: int, script: Path, bodies: Path
) -> list[str]:
    """The wrk invocation. One thread: wrk's event loop drives 32 connections far faster than
    a one-worker server answers them, and each extra thread would only compete with the
    servers for the two cores. wrk takes whole seconds; the timeout is generous so a slow
    answer on a loaded machine counts as latency, not as an error."""
    return [
        "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
        "-s", str(script), url, "--", str(bodies), path,
    ]  # fmt: skip


def parse_wrk(stdout: str) -> LoadSummary:
    """The `WRK_RESULT` line of the script's `done()`; raises when wrk printed none (it failed
    before the run, or the script did)."""
    lines = [ln for ln in stdout.splitlines() if ln.startswith(MARKER)]
    if len(lines) != 1:
        raise RuntimeError(f"wrk printed {len(lines)} result lines: {stdout[-2000:]!r}")
    got = json.loads(lines[0].removeprefix(MARKER))
    errors = {"non-2xx": got["non_2xx"]} | {k: got[k] for k in SOCKET_ERRORS}
    return LoadSummary(
        seconds=got["duration_us"] / 1e6,
        ok=got["requests"] - got["non_2xx"],
        errors={k: v for k, v in errors.items() if v},
        p50_us=got["p50_us"],
        p99_us=got["p99_us"],
    )


def run_wrk(
    url: str, *, path: str, seconds: float, connections: int, bodies: Sequence[bytes]
) -> LoadSummary:
    """Closed-loop POSTs of `bodies` (in turn, repeated) to `url + path` for about `seconds`."""
    if shutil.which("wrk") is None:
        raise RuntimeError(f"wrk is not on the PATH: {INSTALL}")
    if any(b"\n" in b for b in bodies):
        raise ValueError("the Lua script reads one body a line")
    with tempfile.TemporaryDirectory(prefix="wrk-") as tmp:
        script, lines = Path(tmp) / "post.lua", Path(tmp) / "bodies.jsonl"
        script.write_text(LUA)
        lines.write_bytes(b"".join(b + b"\n" for b in bodies))
        cmd = wrk_command(
            url, path=path, seconds=seconds, connections=connections, script=script, bodies=lines
        )
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited with {done.returncode}: {done.stderr[-2000:]}")
    return parse_wrk(done.stdout)
