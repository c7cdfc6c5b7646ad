"""The staleness trigger's policy: the day's signals, and the episodes they open and close.

The staleness trigger keeps one episode per kind of signal (feature drift, out of range,
quality drop, prediction bias, a partial train window, and with `monitoring.use_estimate` a
drop of the quality estimated without labels on a day not matured yet; `Reason.kind`). A kind that appears
opens its own episode, whose onset is that day, whatever the other kinds are doing; a kind
that disappears ends its own episode only. An episode closes once the serving model was trained with at least
`monitoring.episode_close_share` of its train window's days on or after the episode's onset
(from the registry's lineage). The trigger fires when an open episode that is not closed
finds the cooldown since the last fire (shared by all kinds) passed. The decisions are plain
functions, tested directly; the sensor (`defs/monitoring/sensors.py`) reads a day's signals
from the loop's materialisations and the replay's `triggered` policy calls the same ones."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from lifecycle_assets.config import LifecycleConfig, MonitoringConfig
from lifecycle_assets.data.transforms import split_windows
from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.monitoring.metrics import quality_drop
from lifecycle_assets.registry.registry import Registry

SignalKind = Literal[
    "feature_drift",
    "quality_drop",
    "prediction_bias",
    "out_of_range",
    "partial_window",
    "estimated_drop",
]


@dataclass(frozen=True)
class Reason:
    """One staleness signal of a day: its `kind` (episodes are kept per kind) and the human
    `text` for alerts, run tags and metadata."""

    kind: SignalKind
    text: str
    # The day of the data that showed it, when that is not the evaluated day (a quality
    # drop is measured on the newest matured day): an episode it opens starts there.
    since: str | None = None


@dataclass
class Episode:
    """One kind's episode. `onset`: the first day of its signal (None only from an old
    cursor that did not record it; the next day seen with the signal becomes the onset).
    `closed`: a model trained with enough data from the onset on has served, so the retrain
    the episode asked for happened; it stays closed until its kind's signal clears.
    `baseline` (a quality drop's episode): the validated quality the drop was measured
    against on the onset day. Until the episode closes, live quality is held to it (or to
    the serving model's own validated quality, whichever is better): a retrain on data from
    before the onset, validated on the drifted test days, must not lower the bar and so end
    the episode with the model still stale."""

    onset: str | None = None
    closed: bool = False
    baseline: float | None = None


# A cursor from before signal kinds kept one episode for all signals: it is kept under this
# key, and every kind present on the next evaluated day continues it.
_ANY_KIND = "*"


@dataclass
class EpisodeState:
    """The trigger's memory (the sensor's cursor; the replay keeps one per policy).

    `episodes`: kind → its episode, for each kind signalled on `last_day` (the signal has been
    present every evaluated day since the episode's onset). `last_fired`: the day of the last
    retrain request, for the cooldown (shared by all kinds and episodes)."""

    last_day: str | None = None
    last_fired: str | None = None
    episodes: dict[str, Episode] = field(default_factory=dict)

    @property
    def pending(self) -> dict[str, Episode]:
        """The open episodes not closed yet: what a fire asks a retrain for."""
        return {k: e for k, e in self.episodes.items() if not e.closed}

    @property
    def onset(self) -> str | None:
        """The earliest onset of the open episodes (None when none is open)."""
        return min((e.onset for e in self.episodes.values() if e.onset), default=None)

    @property
    def closed(self) -> bool:
        """Some episode is open and every open one is closed."""
        return bool(self.episodes) and not self.pending

    @classmethod
    def parse(cls, cursor: str | None) -> EpisodeState:
        """A dumped state; a cursor written before a field existed still parses (the
        field's default), and the one episode of a cursor from before signal kinds
        (`in_episode`, `onset`, `closed`) carries over to the kinds signalled next."""
        if not cursor:
            return cls()
        raw = json.loads(cursor)
        episodes: dict[str, Episode] = {}
        for kind, ep in (raw.get("episodes") or {}).items():
            ep = ep if isinstance(ep, dict) else {}
            baseline = ep.get("baseline")
            episodes[str(kind)] = Episode(
                ep.get("onset"),
                bool(ep.get("closed", False)),
                float(baseline) if isinstance(baseline, (int, float)) else None,
            )
        if "episodes" not in raw and raw.get("in_episode"):
            episodes[_ANY_KIND] = Episode(raw.get("onset"), bool(raw.get("closed", False)))
        return cls(
            last_day=raw.get("last_day"), last_fired=raw.get("last_fired"), episodes=episodes
        )

    def dump(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def staleness_reasons(
    max_psi: float | None,
    live_quality: float | None,
    validated_quality: float | None,
    bias_low: float | None,
    bias_high: float | None,
    cfg: MonitoringConfig,
    *,
    metric: str,
    out_of_range_share: float | None = None,
) -> list[Reason]:
    """Why the serving model looks stale today, one `Reason` per kind of signal; empty when
    it does not. `metric` is the gate's metric (`validation.metric`), which orients the
    quality drop; it has no default so that no caller can silently compare a lower-is-better
    metric the wrong way. `out_of_range_share`: the share of the day's requests served with
    a feature beyond the model's training range (`prediction_drift`)."""
    psi, live, validated = finite(max_psi), finite(live_quality), finite(validated_quality)
    low, high = finite(bias_low), finite(bias_high)
    reasons = []
    if psi is not None and psi > cfg.psi_threshold:
        reasons.append(
            Reason("feature_drift", f"feature drift: max PSI {psi:.3f} > {cfg.psi_threshold}")
        )
    beyond = finite(out_of_range_share)
    if beyond is not None and beyond > cfg.out_of_range_share:
        reasons.append(
            Reason(
                "out_of_range",
                f"out of range: {beyond:.1%} of requests beyond the training range "
                f"(> {cfg.out_of_range_share:.1%})",
            )
        )
    if validated is not None:
        dropped = quality_reason(live, validated, metric, cfg, f"the validated {validated:.3f}")
        if dropped:
            reasons.append(dropped)
    if (
        low is not None
        and high is not None
        and (low > cfg.bias_tolerance or high < -cfg.bias_tolerance)
    ):
        reasons.append(
            Reason(
                "prediction_bias",
                f"prediction bias interval [{low:+.3f}, {high:+.3f}] excludes "
                f"±{cfg.bias_tolerance}",
            )
        )
    return reasons


def quality_reason(
    live: float | None, bar: float, metric: str, cfg: MonitoringConfig, bar_text: str
) -> Reason | None:
    """The quality-drop signal: live quality worse than `bar` by more than
    `monitoring.quality_drop` (`metrics.quality_drop` orients the metric); `bar_text` says
    in the reason what the bar is ("the validated 0.900")."""
    drop = quality_drop(live, bar, metric)
    if drop is None or drop <= cfg.quality_drop:
        return None
    return Reason(
        "quality_drop",
        f"live quality: {metric} {live:.3f} is {drop:.3f} worse than {bar_text} "
        f"(> {cfg.quality_drop})",
    )


def estimated_reason(
    estimated: float | None,
    validated: float | None,
    metric: str,
    cfg: MonitoringConfig,
    day: str | None = None,
) -> Reason | None:
    """The estimate's quality-drop signal (`monitoring.use_estimate`): the quality estimated
    without labels for day `day` is worse than the validated quality by more than
    `monitoring.quality_drop`. Its episode starts with that day's data."""
    est, bar = finite(estimated), finite(validated)
    drop = quality_drop(est, bar, metric)
    if est is None or bar is None or drop is None or drop <= cfg.quality_drop:
        return None
    return Reason(
        "estimated_drop",
        f"estimated quality (no labels yet{f', {day}' if day else ''}): {metric} {est:.3f} "
        f"is {drop:.3f} worse than the validated {bar:.3f} (> {cfg.quality_drop})",
        since=day,
    )


def days_with_data(window: tuple[str, str], first_day: str) -> int:
    """The days of `window` (first and last day, ISO, both included) on or after
    `first_day`, the loop's first day of data."""
    start, end = (dt.date.fromisoformat(d) for d in window)
    return max((end - max(start, dt.date.fromisoformat(first_day))).days + 1, 0)


def partial_window_reason(
    serving_window: tuple[str, str] | None,
    today_window: tuple[str, str],
    first_day: str | None,
) -> Reason | None:
    """The serving model learned from a train window that reached back before the loop's
    first day of data (a cold-start model, trained as soon as `windows.min_train_rows`
    allowed), and today's train window holds twice as many days of data, or is full: a
    model from the fuller window is due. Doubling keeps it to about log2(train_days)
    retrains while the window fills; once a model from a full window serves, it never
    signals."""
    if serving_window is None or first_day is None:
        return None
    full = days_with_data(today_window, today_window[0])
    served = days_with_data(serving_window, first_day)
    available = days_with_data(today_window, first_day)
    if served >= full or available < min(2 * max(served, 1), full):
        return None
    return Reason(
        "partial_window",
        f"partial train window: the serving model learned from {served} day(s) of data; "
        f"today's window holds {available} of {full}",
    )


def window_reasons(
    config: LifecycleConfig,
    day: str,
    serving_window: tuple[str, str] | None,
    first_day: str | None,
) -> list[Reason]:
    """The train-window signals of loop day `day` (ISO): `partial_window_reason` against
    the day's own train window."""
    reason = partial_window_reason(serving_window, day_train_window(day, config), first_day)
    return [reason] if reason else []


def day_train_window(day: str | dt.date, config: LifecycleConfig) -> tuple[str, str]:
    """The first and last day (ISO) of the train window of a retrain on loop day `day`
    (`data.transforms.split_windows`, with the current `windows`/`labels` settings)."""
    start, end = split_windows(dt.date.fromisoformat(str(day)), config)["train"]
    return start.isoformat(), end.isoformat()


def train_window(
    entry: Mapping[str, Any] | None, config: LifecycleConfig
) -> tuple[str, str] | None:
    """The first and last day (ISO) of the data a registered model was trained on: the
    train window (`data.transforms.split_windows`) of the day it was trained, read from its
    registry lineage (`day`, else the day of its `train_split_tag`). None when the registry
    does not say. Windows are computed with the current `windows`/`labels` settings."""
    entry = entry or {}
    day = entry.get("day") or str(entry.get("train_split_tag") or "").partition("/")[2]
    try:
        return day_train_window(str(day), config)
    except ValueError:
        return None


def serving_train_window(
    home: LifecycleHome, config: LifecycleConfig, version: str | None
) -> tuple[str, str] | None:
    """`train_window` of a registered version (None for no or an unknown version)."""
    if not version:
        return None
    return train_window(Registry(home, config.problem.name).versions().get(version), config)


def post_onset_days(window: tuple[str, str], onset: str) -> int:
    """The days of `window` (first and last day, ISO, both included) on or after `onset`."""
    return days_with_data(window, onset)


def post_onset_share(window: tuple[str, str], onset: str) -> float:
    """The share of the days of `window` (first and last day, ISO, both included) that are
    on or after `onset`."""
    start, end = (dt.date.fromisoformat(d) for d in window)
    total = (end - start).days + 1
    if total <= 0:
        return 0.0
    return post_onset_days(window, onset) / total


def step_episode(
    state: EpisodeState,
    day: str,
    reasons: Sequence[Reason],
    cooldown_days: int,
    serving_window: tuple[str, str] | None = None,
    *,
    close_share: float,
    catch_up: bool = False,
    window_of: Callable[[str], tuple[str, str]] | None = None,
) -> tuple[bool, EpisodeState]:
    """One evaluated day of the staleness trigger; returns (fire, new state).

    Episodes are per kind of reason. A kind signalled today without an episode opens one
    (`onset` = today), even while other kinds' episodes are open or closed; a kind not
    signalled today ends its own episode and no other. While its kind persists, an episode
    closes without firing once the serving model's train window (`serving_window`, first
    and last day, ISO: `train_window`) has at least `close_share` of its days on or after
    the onset: a retrain that learned mostly from after the change is serving. One
    post-onset day is not enough (`monitoring.episode_close_share`). Until then (the window
    is mostly pre-onset, or the registry does not say: None) the episode keeps asking, so
    neither a retrain on pre-onset data (labels mature late) nor a retrain the gate rejected
    ends it. The trigger fires when some open episode is not closed and `cooldown_days`
    have passed since the last fire (any episode's); one fire serves them all.

    `catch_up` (`monitoring.catch_up`; `window_of`: the train window of a retrain on a
    given day): an open quality-drop episode follows the data, not the cooldown, while its
    change is arriving. It does not ask for a retrain on a day whose train window holds no
    day from its onset on (a model trained before the drop cannot have learned it; a drop
    is seen on a matured day, after the window's end), and it fires, cooldown or not, on a
    day whose train window holds more of those days than the last retrain's did. Once the
    window is all post-onset it waits for the cooldown again like any episode."""
    episodes: dict[str, Episode] = {}
    since = {r.kind: r.since for r in reasons}
    for kind in sorted(since):
        before = state.episodes.get(kind) or state.episodes.get(_ANY_KIND)
        if before is None or before.onset is None:
            episode = Episode(onset=since[kind] or day)
        else:
            episode = Episode(before.onset, before.closed, before.baseline)
        if (
            not episode.closed
            and serving_window is not None
            and post_onset_share(serving_window, str(episode.onset)) >= close_share
        ):
            episode.closed = True
        episodes[kind] = episode
    new = EpisodeState(last_day=day, last_fired=state.last_fired, episodes=episodes)
    if not new.pending:
        return False, new
    cooled = (
        state.last_fired is None
        or (dt.date.fromisoformat(day) - dt.date.fromisoformat(state.last_fired)).days
        >= cooldown_days
    )
    asking = set(new.pending)
    quality = new.pending.get("quality_drop")
    if catch_up and quality is not None and window_of is not None:
        onset = str(quality.onset)
        learnable = post_onset_days(window_of(day), onset)
        learned = post_onset_days(window_of(state.last_fired), onset) if state.last_fired else 0
        if learnable > learned:
            cooled = True  # today's retrain learns more of the change than the last one
        elif learnable == 0:
            asking.discard("quality_drop")  # nothing from the drop on to learn from yet
    fire = cooled and bool(asking)
    if fire:
        new.last_fired = day
    return fire, new


def held_to_onset(
    signal: Mapping[str, Any], state: EpisodeState, config: LifecycleConfig
) -> list[Reason]:
    """The day's reasons, with a quality drop measured against the open quality episode's
    onset baseline (`Episode.baseline`) while that episode is not closed: the better of it
    and the serving model's own validated quality."""
    reasons = list(signal["reasons"])
    episode = state.episodes.get("quality_drop")
    live = finite(signal.get("live_quality"))
    if episode is None or episode.closed or episode.baseline is None or live is None:
        return reasons
    metric = config.validation.metric
    validated = finite(signal.get("validated_quality"))
    ref = episode.baseline
    if validated is not None and (quality_drop(validated, ref, metric) or 0.0) < 0:
        ref = validated  # the serving model was validated better than the onset's bar
    reasons = [r for r in reasons if r.kind != "quality_drop"]
    bar_text = f"the {ref:.3f} validated before the episode's onset {episode.onset}"
    held = quality_reason(live, ref, metric, config.monitoring, bar_text)
    since = signal.get("live_quality_day")
    return [*reasons, replace(held, since=since)] if held else reasons
