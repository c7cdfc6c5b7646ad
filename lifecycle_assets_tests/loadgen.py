"""A small HTTP/1.1 keep-alive load generator (asyncio, raw sockets) for the serving
benchmarks, the soak and the crash test: light enough that the client does not eat the
server's CPU on a small machine, and exact about which requests were acknowledged.

Each connection sends one request at a time (closed loop); every `/predict` body carries a
client-chosen `request_id`, so the set of ids answered with a 200 can be compared with the
prediction log line for line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lifecycle_assets.serving.process import kill_tree

Body = Callable[[int, int], bytes | None]  # (connection, sequence) -> JSON body, None for GET


@dataclass
class LoadResult:
    seconds: float = 0.0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # "503", "disconnect", ...
    latencies_us: list[float] = field(default_factory=list)
    acked: list[tuple[float, str]] = field(default_factory=list)  # (monotonic, request id)

    @property
    def total(self) -> int:
        return self.ok + sum(self.errors.values())

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        data = sorted(self.latencies_us)
        if not data:
            return float("nan")
        return data[min(len(data) - 1, int(q / 100 * len(data)))]


def request_bytes(host: str, path: str, body: bytes | None, headers: dict[str, str]) -> bytes:
    lines = [f"{'GET' if body is None else 'POST'} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    body = await reader.readexactly(length) if length else b""
    return status, body


async def _connection(
    conn: int,
    host: str,
    port: int,
    path: Callable[[int, int], str],
    body: Body,
    headers: dict[str, str],
    stop_at: float,
    result: LoadResult,
    id_of: Callable[[int, int], str | None],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    seq = 0
    try:
        while time.monotonic() < stop_at:
            payload = body(conn, seq)
            t0 = time.perf_counter()
            writer.write(request_bytes(host, path(conn, seq), payload, headers))
            try:
                status, _ = await _read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                result.errors["disconnect"] = result.errors.get("disconnect", 0) + 1
                return
            elapsed = (time.perf_counter() - t0) * 1e6
            if status == 200:
                result.ok += 1
                result.latencies_us.append(elapsed)
                rid = id_of(conn, seq)
                if rid is not None:
                    result.acked.append((time.monotonic(), rid))
            else:
                key = str(status)
                result.errors[key] = result.errors.get(key, 0) + 1
            seq += 1
    finally:
        writer.close()


def run_load(
    url: str,
    *,
    seconds: float,
    connections: int,
    path: Callable[[int, int], str],
    body: Body,
    id_of: Callable[[int, int], str | None] = lambda c, s: None,
    headers: dict[str, str] | None = None,
    during: Callable[[float], None] | None = None,
) -> LoadResult:
    """Closed-loop load for `seconds`; `during(elapsed)` runs about every 0.5 s (sampling)."""
    host, port = url.removeprefix("http://").split(":")
    result = LoadResult()

    async def main() -> None:
        t0 = time.monotonic()
        stop_at = t0 + seconds
        tasks = [
            asyncio.create_task(
                _connection(c, host, int(port), path, body, headers or {}, stop_at, result, id_of)
            )
            for c in range(connections)
        ]
        while during is not None and time.monotonic() < stop_at:
            await asyncio.sleep(0.5)
            during(time.monotonic() - t0)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                name = type(r).__name__
                result.errors[name] = result.errors.get(name, 0) + 1
        result.seconds = time.monotonic() - t0

    asyncio.run(main())
    return result


def sequential(
    url: str,
    n: int,
    path: Callable[[int], str],
    body: Callable[[int], bytes | None],
    headers: dict[str, str] | None = None,
) -> list[float]:
    """One keep-alive connection, one request at a time, a blocking socket (the lightest
    client): latencies in µs of the 200 responses; anything else raises."""
    import socket

    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    out = []
    try:
        for i in range(n):
            req = request_bytes(host, path(i), body(i), headers or {})
            t0 = time.perf_counter()
            sock.sendall(req)
            while b"\r\n\r\n" not in buf:
                buf += sock.recv(65536)
            head, _, buf = buf.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            while len(buf) < length:
                buf += sock.recv(65536)
            payload, buf = buf[:length], buf[length:]
            out.append((time.perf_counter() - t0) * 1e6)
            status = int(head[9:12])
            if status != 200:
                raise RuntimeError(f"{path(i)} → {status}: {payload[:300]!r}")
    finally:
        sock.close()
    return out


def predict_body(features: Callable[[int], dict[str, Any]], prefix: str) -> Body:
    """`/predict` bodies with ids `<prefix>-<conn>-<seq>`."""

    def make(conn: int, seq: int) -> bytes:
        return json.dumps(
            {
                "request_id": f"{prefix}-{conn}-{seq}",
                "entity_id": f"card-{seq % 500}",
                "features": features(seq),
            }
        ).encode()

    return make


def group_rss(pid: int) -> int:
    """Resident memory of a process and all its children (BentoML's arbiter and workers)."""
    import psutil  # a dev dependency: load tests only

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


# --- soak and crash runs (benchmarks/soak.py and the reliability tests) ----------------------


def register_untrained_model(home_root: str, version: str, promote: str = "yes") -> None:
    """Register and (unless `promote` is "no") promote a model with the config's
    architecture and untrained weights: it costs what the trained model costs per request,
    without a training run. Run it in a child process with the home's environment (see
    `in_child`)."""
    import datetime as dt
    from pathlib import Path

    import numpy as np
    import polars as pl
    import torch

    from lifecycle_assets.home import LifecycleHome
    from lifecycle_assets.registry.registry import Registry
    from lifecycle_assets.simulator.fraud import FraudSimulator
    from lifecycle_assets.training.artifact import ModelArtifact, build_net, save_artifact
    from lifecycle_assets.training.features import Preprocessor, fit_ranges
    from lifecycle_assets.training.train import model_architecture

    home = LifecycleHome(Path(home_root))
    config = home.config()
    problem = config.problem
    payments = FraudSimulator(config).payments(0)
    frame = pl.DataFrame([p.features for p in payments])
    pre = Preprocessor.fit(frame, problem.numeric_features, problem.categorical_features)
    num, _ = pre.transform(frame)
    arch = model_architecture(num, config)  # the configured family, untrained
    torch.manual_seed(int(np.uint32(hash(version) & 0xFFFF)))
    artifact = ModelArtifact(
        task=problem.task,
        preprocessor=pre,
        net=build_net(pre, arch, config.training.model_factories),
        architecture=arch,
        thresholds={
            "review": config.postprocessing.review_threshold,
            "decline": config.postprocessing.decline_threshold,
        },
        version=version,
        metadata={
            "feature_ranges": fit_ranges(
                frame, problem.numeric_features, problem.numeric_ranges, problem.feature_range_slack
            )
        },
    )
    directory = home.root / "staging" / version
    save_artifact(artifact, directory)
    registry = Registry(home, problem.name)
    registry.register(directory, {"source": "loadgen"})
    if promote == "no":
        return
    registry.move_alias(
        "production", version, actor="loadgen", reason="load test", when=dt.datetime.now(dt.UTC)
    )


def in_child(
    home: Any, func: str, *args: str, module: str = "lifecycle_assets_tests.loadgen"
) -> str:
    """Run `<module>.<func>(*args)` in a fresh process with the home's environment
    (BentoML fixes its model store location once per process); its stdout."""
    import subprocess
    import sys

    from lifecycle_assets.home import project_root

    code = f"from {module} import {func}; {func}(*{list(args)!r})"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=project_root(),
        env={**os.environ, **home.tool_env()},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{func} failed: {done.stderr[-3000:]}")
    return done.stdout


def publish_scheduled(home_root: str, version: str, day: str) -> None:
    """The offline path as `offline_predictions` runs it, for tests and benchmarks: the
    simulator's payments scheduled for `day` + 1 logged, scored by `version` from the registry
    and swapped into the home's lookup store. Prints the first rows as JSON."""
    import datetime as dt
    from pathlib import Path

    from lifecycle_assets.home import LifecycleHome
    from lifecycle_assets.records import LogWriter
    from lifecycle_assets.registry.registry import load_version
    from lifecycle_assets.serving.lookup import SqliteLookupStore
    from lifecycle_assets.serving.offline import (
        log_scheduled_payments,
        publish_offline_predictions,
    )
    from lifecycle_assets.simulator.fraud import FraudSimulator

    home = LifecycleHome(Path(home_root))
    config = home.config()
    sim = FraudSimulator(config)
    known = dt.date.fromisoformat(day)
    log_scheduled_payments(LogWriter(home.logs, "billing"), sim, sim.day_index(known))
    artifact = load_version(home, config.problem.name, version)
    noon = dt.datetime.combine(known, dt.time(12), tzinfo=dt.UTC)
    frame, _ = publish_offline_predictions(
        home.logs, config, known + dt.timedelta(days=1), artifact,
        SqliteLookupStore(home.lookup), noon,
    )  # fmt: skip
    print(frame.head(3).select("item_id", "score", "decision").write_json())


def soak_features(seq: int) -> dict[str, Any]:
    return {
        "amount": 5.0 + (seq % 400) * 2.5,
        "merchant_risk": (seq % 10) / 10,
        "hour": seq % 24,
        "card_age_days": 30 + seq % 900,
        "txn_count_24h": seq % 7,
        "merchant_category": ("grocery", "travel", "fuel", "never-seen")[seq % 4],
        "country": ("US", "GB", "DE", "ZZ")[seq % 4],
        "channel": ("web", "pos")[seq % 2],
    }


def logged_ids(home: Any, prefixes: tuple[str, ...] = ("",)) -> list[str]:
    """The request ids starting with one of `prefixes` in the home's prediction log (all
    days), as the data pipeline reads it."""
    import datetime as dt

    from lifecycle_assets.records import read_predictions

    problem = home.config().problem
    ids: list[str] = []
    for folder in sorted((home.logs / "predictions").glob("date=*")):
        day = dt.date.fromisoformat(folder.name.removeprefix("date="))
        rows, bad = read_predictions(
            home.logs, day, problem.numeric_features, problem.categorical_features
        )
        if not bad.is_empty():
            raise RuntimeError(f"{bad.height} quarantined log lines on {day}: {bad.head(3)}")
        ids += [i for i in rows["request_id"].to_list() if i.startswith(prefixes)]
    return ids


def soak(
    service: Any, seconds: float, connections: int, warmup: float = 3.0, stop: bool = True
) -> dict[str, Any]:
    """Closed-loop `/predict` load on a started `ServiceProcess`, then a graceful stop (or,
    with `stop=False`, a wait for the log to catch up); returns the reconciliation of
    acknowledged against logged predictions and the RSS growth."""
    if service.proc is None:
        raise RuntimeError("the service was not started")
    pid = service.proc.pid
    warm = run_load(
        service.url, seconds=warmup, connections=connections, path=lambda c, s: "/predict",
        body=predict_body(soak_features, "warm"), id_of=lambda c, s: f"warm-{c}-{s}",
    )  # fmt: skip
    rss: list[tuple[float, int]] = [(0.0, group_rss(pid))]
    load = run_load(
        service.url, seconds=seconds, connections=connections, path=lambda c, s: "/predict",
        body=predict_body(soak_features, "soak"), id_of=lambda c, s: f"soak-{c}-{s}",
        during=lambda t: rss.append((t, group_rss(pid))),
    )  # fmt: skip
    rss.append((load.seconds, group_rss(pid)))
    acked = {rid for _, rid in warm.acked} | {rid for _, rid in load.acked}
    prefixes = ("warm-", "soak-")
    if stop:
        service.stop()
        logged = logged_ids(service.home, prefixes)
    else:  # written within one flush interval; give it a few seconds on a busy machine
        deadline = time.monotonic() + 10
        logged = logged_ids(service.home, prefixes)
        while len(logged) < len(acked) and time.monotonic() < deadline:
            time.sleep(0.2)
            logged = logged_ids(service.home, prefixes)
    logged_set = set(logged)
    return {
        "seconds": round(load.seconds, 1),
        "connections": connections,
        "rate_per_s": round(load.rate, 1),
        "ok": load.ok,
        "errors": load.errors | {f"warmup {k}": v for k, v in warm.errors.items()},
        "p50_us": round(load.percentile(50)),
        "p99_us": round(load.percentile(99)),
        "acknowledged": len(acked),
        "logged": len(logged),
        "acknowledged_missing_from_log": len(acked - logged_set),
        "logged_twice": len(logged) - len(logged_set),
        "rss_start_mb": round(rss[0][1] / 2**20, 1),
        "rss_end_mb": round(rss[-1][1] / 2**20, 1),
        "rss_growth": round(rss[-1][1] / rss[0][1] - 1, 4) if rss[0][1] else None,
    }


def crash(
    service: Any, seconds: float, connections: int, sig: int = signal.SIGKILL
) -> dict[str, Any]:
    """`/predict` load, then `sig` to the whole server group mid-load (SIGKILL: a crash;
    SIGTERM: a graceful stop with requests in flight); returns how many acknowledged
    predictions the log lacks and how long before the signal they were answered."""
    if service.proc is None:
        raise RuntimeError("the service was not started")
    pid = service.proc.pid
    killed_at: list[float] = []

    prefix = "crash" if sig == signal.SIGKILL else "term"

    def maybe_kill(elapsed: float) -> None:
        if not killed_at and elapsed >= seconds:
            killed_at.append(time.monotonic())
            if sig == signal.SIGKILL:
                kill_tree(pid)  # every worker dies at once, as in a crash
            else:
                os.killpg(pid, sig)  # the arbiter stops its workers gracefully

    load = run_load(
        service.url, seconds=seconds + 2, connections=connections, path=lambda c, s: "/predict",
        body=predict_body(soak_features, prefix), id_of=lambda c, s: f"{prefix}-{c}-{s}",
        during=maybe_kill,
    )  # fmt: skip
    service.proc.wait(60)
    logged = set(logged_ids(service.home, (f"{prefix}-",)))
    acked = dict((rid, t) for t, rid in load.acked)
    missing = [rid for rid in acked if rid not in logged]
    window_ms = max((killed_at[0] - acked[r]) * 1000 for r in missing) if missing else 0.0
    return {
        "acknowledged": len(acked),
        "logged": len(logged),
        "acknowledged_missing_from_log": len(missing),
        "loss_window_ms": round(window_ms, 2),
        "rate_per_s": round(load.rate, 1),
        "client_errors": load.errors,
    }


# Requests that must each get a 4xx and leave no trace in the prediction log: huge finite
# numbers (a NaN score once approved them and poisoned the log writer), values out of range,
# implausible event times, wrong types, ids with a trailing newline, non-JSON numbers.
POISON: tuple[tuple[str, Any], ...] = (
    ("merchant_risk", 1e38),
    ("amount", 1e300),
    ("txn_count_24h", 1e39),
    ("hour", 25),
    ("card_age_days", -1e200),
    ("country", 7),
    ("event_time", "1000-01-01T00:00:00Z"),
    ("event_time", "1970-01-01T00:00:00Z"),
    ("event_time", "9999-12-31T00:00:00Z"),
    ("request_id", "abc\n"),
    ("amount", "NaN"),  # sent as the bare JSON token NaN
    ("amount", 10**400),
)


def poison_body(seq: int) -> bytes:
    field, value = POISON[seq % len(POISON)]
    body: dict[str, Any] = {"entity_id": f"p{seq}", "features": soak_features(seq)}
    if field in ("event_time", "request_id"):
        body[field] = value
    else:
        body["features"][field] = value
    if value == "NaN":
        body["features"][field] = 0.0
        return json.dumps(body).replace('"amount": 0.0', '"amount": NaN').encode()
    return json.dumps(body).encode()


def poison_soak(
    service: Any, seconds: float, connections: int, distinct_days: int = 1000
) -> dict[str, Any]:
    """Valid closed-loop `/predict` load while one more client alternates poison (`POISON`)
    with predictions for `distinct_days` different event days (each a day further back than
    the last), until both the load and the days are done. Returns the answers per kind and
    the ids acknowledged, to reconcile with the log."""
    import datetime as dt
    import threading

    import httpx

    from lifecycle_assets.home import now

    clock = now(service.home)
    poison_answers: dict[str, int] = {}
    day_answers: dict[str, int] = {}
    day_ids: list[str] = []
    done = threading.Event()
    sent = 0

    def count(answers: dict[str, int], response: httpx.Response) -> bool:
        key = str(response.status_code)
        answers[key] = answers.get(key, 0) + 1
        return response.status_code == 200

    def side_client() -> None:
        nonlocal sent
        json_type = {"content-type": "application/json"}
        with httpx.Client(base_url=service.url, timeout=30) as client:
            day = 0
            while not (done.is_set() and day >= distinct_days):
                count(
                    poison_answers,
                    client.post("/predict", content=poison_body(sent), headers=json_type),
                )
                sent += 1
                if day < distinct_days:
                    rid = f"day-{day}"
                    body = {
                        "request_id": rid,
                        "entity_id": "d",
                        "event_time": (clock - dt.timedelta(days=day)).isoformat(),
                        "features": soak_features(day),
                    }
                    if count(day_answers, client.post("/predict", json=body)):
                        day_ids.append(rid)
                    day += 1

    thread = threading.Thread(target=side_client, name="poison", daemon=True)
    thread.start()
    load = run_load(
        service.url, seconds=seconds, connections=connections, path=lambda c, s: "/predict",
        body=predict_body(soak_features, "soak"), id_of=lambda c, s: f"soak-{c}-{s}",
    )  # fmt: skip
    done.set()
    thread.join(600)
    return {
        "valid_ok": load.ok,
        "valid_errors": load.errors,
        "poison_sent": sent,
        "poison_answers": poison_answers,
        "day_answers": day_answers,
        "days_accepted": len(day_ids),
        "acknowledged_ids": [rid for _, rid in load.acked] + day_ids,
    }
