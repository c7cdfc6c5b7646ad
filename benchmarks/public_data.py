"""The quality benchmark's two public real-data scenarios, read out of NannyML's wheel.

NannyML (https://github.com/NannyML/nannyml, Apache-2.0) ships its example datasets as CSV
files inside its wheel, under `nannyml/datasets/data/`: for each, a `_reference` file (with
the label), an `_analysis` file (without it) and an `_analysis_gt` file (the analysis rows'
labels by `id`). The wheel is fetched once with `pip download nannyml==0.13.1 --no-deps`
into a cache directory (the project's `.cache/quality-public/` by default; never the home
directory: pip runs with `--no-cache-dir`), its sha256 is checked, and the files are read
straight out of it with `zipfile`: nannyml is not installed and not a dependency.

- `public-wfh` (`synthetic_sample_*`): will an employee work from home on a given day
  (`work_home_actual`, binary). 100,000 rows, 2014-05 to 2020-12; from 2019-05 on the
  features shift abruptly (distance from the office doubles, `wfh_prev_workday` goes from
  55 % to 80 % true, public transport gets dearer).
- `public-housing` (`california_housing_*`): the scikit-learn California housing data with
  a binary `clf_target` (the block's median house value above a threshold) and hourly
  timestamps from 2020-10 to 2022-05, ordered by NannyML so that each stretch of time is a
  different part of the state: the features, and the label rate (17 %–94 % per month),
  move with it.

The mapping onto the replay format (docs/replay.md) is `PUBLIC[name]`: `id` becomes the
entity id (not a feature), `timestamp` the event time (naive: UTC), the label stays, and the
columns NannyML ships that are not data are dropped: `y_pred_proba` and `y_pred` (NannyML's
own model's outputs) and `period` (its reference/analysis split). Periods are calendar
months; `--size small` keeps 8 months and at most 600 rows of each (seeded).
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = ROOT / ".cache" / "quality-public"
PACKAGE = "nannyml==0.13.1"
WHEEL = "nannyml-0.13.1-py3-none-any.whl"
WHEEL_SHA256 = "cf5f4a33489834ae6773cb1baa33a0f98c0a3ee6ed9b43049478b25ce22fe869"
DATA_DIR = "nannyml/datasets/data/"
ID = "id"
TIME = "timestamp"
# Shipped beside the data but not data: NannyML's model's outputs and its split's name.
NOT_FEATURES = ("y_pred_proba", "y_pred", "period")
SMALL_ROWS = 600  # --size small: at most this many rows per month (seeded subsample)


class PublicDataError(RuntimeError):
    """The wheel cannot be fetched or does not hold what this module expects."""


@dataclass(frozen=True)
class PublicSet:
    name: str
    stem: str  # the files' common prefix in the wheel
    label: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    # Inclusive [first, last] calendar months replayed, per --size.
    months: dict[str, tuple[str, str]]
    what: str


PUBLIC = {
    s.name: s
    for s in (
        PublicSet(
            "public-wfh",
            "synthetic_sample",
            "work_home_actual",
            ("distance_from_office", "gas_price_per_litre", "public_transportation_cost", "tenure"),
            ("salary_range", "wfh_prev_workday", "workday"),
            # The last 36 complete months (the trailing 10 rows of 2021-01 are left out);
            # the shift at 2019-05 is period 16. Small: 2019-01..08, the shift at period 4.
            {"full": ("2018-01", "2020-12"), "small": ("2019-01", "2019-08")},
            "NannyML synthetic work-from-home (real-data format), features shift at 2019-05",
        ),
        PublicSet(
            "public-housing",
            "california_housing",
            "clf_target",
            (
                "MedInc",
                "HouseAge",
                "AveRooms",
                "AveBedrms",
                "Population",
                "AveOccup",
                "Latitude",
                "Longitude",
            ),
            (),
            # Every complete month (the last, 2022-05, has 9 days: left out). Small: the
            # first 8 months.
            {"full": ("2020-10", "2022-04"), "small": ("2020-10", "2021-05")},
            "California housing (NannyML), value above threshold; the region moves over time",
        ),
    )
}


def _pip_commands() -> list[list[str]]:
    """pip, from this interpreter if it has it, else the project's tool environment, else
    the PATH (the project's venv is made by uv and may have no pip)."""
    out = [[sys.executable, "-m", "pip"]]
    tools = ROOT / ".tools" / "bin" / "python"
    if tools.is_file():
        out.append([str(tools), "-m", "pip"])
    for name in ("pip3", "pip"):
        if found := shutil.which(name):
            out.append([found])
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_wheel(cache: Path, echo: Callable[[str], None] = print) -> Path:
    """The wheel in `cache`, downloaded there first when it is not (checked by sha256)."""
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / WHEEL
    if not wheel.is_file():
        errors = []
        for pip in _pip_commands():
            cmd = [*pip, "download", PACKAGE, "--no-deps", "--no-cache-dir", "-d", str(cache)]
            echo(f"fetching {PACKAGE}: {' '.join(cmd)}")
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            except (OSError, subprocess.TimeoutExpired) as err:
                errors.append(f"{pip[0]}: {err}")
                continue
            if proc.returncode == 0 and wheel.is_file():
                break
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
            errors.append(f"{' '.join(pip)}: {tail[0]}")
        else:
            raise PublicDataError(
                f"cannot download {PACKAGE} into {cache} ({'; '.join(errors)}); put {WHEEL} "
                "there by hand (pip download nannyml==0.13.1 --no-deps -d DIR)"
            )
    digest = _sha256(wheel)
    if digest != WHEEL_SHA256:
        raise PublicDataError(f"{wheel}: sha256 {digest}, expected {WHEEL_SHA256}; delete it")
    return wheel


def _read(z: zipfile.ZipFile, name: str) -> pl.DataFrame:
    path = DATA_DIR + name + ".csv"
    try:
        raw = z.read(path)
    except KeyError:
        raise PublicDataError(f"{WHEEL} holds no {path}") from None
    return pl.read_csv(io.BytesIO(raw), infer_schema_length=None)


def load(
    name: str, size: str, cache: Path, seed: int = 0, echo: Callable[[str], None] = print
) -> pl.DataFrame:
    """The public set `name` as a replay file's rows: entity id `id` (text), event time
    `timestamp` (UTC), the features, the label; in time order."""
    spec = PUBLIC[name]
    with zipfile.ZipFile(fetch_wheel(cache, echo)) as z:
        reference = _read(z, f"{spec.stem}_reference")
        analysis = _read(z, f"{spec.stem}_analysis")
        targets = _read(z, f"{spec.stem}_analysis_gt")
    if spec.label in analysis.columns or set(targets.columns) != {ID, spec.label}:
        raise PublicDataError(f"{spec.stem}: unexpected analysis/target columns")
    joined = analysis.join(targets, on=ID, how="left", validate="1:1")
    if joined[spec.label].null_count():
        raise PublicDataError(f"{spec.stem}: analysis rows without a target")
    columns = [ID, TIME, *spec.numeric, *spec.categorical, spec.label]
    missing = [c for c in columns if c not in reference.columns or c not in joined.columns]
    if missing:
        raise PublicDataError(f"{spec.stem}: no column {missing}")
    frame = pl.concat([reference.select(columns), joined.select(columns)])
    if frame[ID].is_duplicated().any():
        raise PublicDataError(f"{spec.stem}: ids repeat across reference and analysis")
    frame = frame.with_columns(
        pl.col(ID).cast(pl.String),
        pl.col(TIME).str.to_datetime(time_unit="us", time_zone="UTC", strict=True),
        *[pl.col(c).cast(pl.Float64) for c in spec.numeric],
        # booleans (wfh_prev_workday) as categories
        *[pl.col(c).cast(pl.String).str.to_lowercase() for c in spec.categorical],
        pl.col(spec.label).cast(pl.Int64),
    ).sort(TIME, ID)
    first, last = spec.months[size]
    month = pl.col(TIME).dt.strftime("%Y-%m")
    frame = frame.filter((month >= first) & (month <= last))
    if size == "small":
        rng = np.random.default_rng(seed)
        keep = frame.with_columns(month.alias("_m"), pl.Series("_r", rng.random(frame.height)))
        keep = keep.with_columns(pl.col("_r").rank("ordinal").over("_m").alias("_k"))
        frame = keep.filter(pl.col("_k") <= SMALL_ROWS).drop("_m", "_r", "_k")
    return frame.sort(TIME, ID)
