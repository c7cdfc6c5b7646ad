"""The built-in example application: a card-payment fraud simulator.

It plays the part of the application around the model: a day of card payments (with the
features the service would see), the chargebacks that reveal fraud days later, and tomorrow's
scheduled (recurring) charges for offline scoring. Everything is a pure function of
`SimulationConfig.seed` and the day index: day D is identical whether it is generated first,
last or twice, so replays and late-label lookbacks agree with what was logged.

Fraud is drawn from a logistic model over the features, so P(features) is the same every day
and only P(fraud | features) changes at `drift_day` — concept drift in the strict sense, the
case that retraining (not recalibrating inputs) is for. With `drift_end_day` the drift is an
episode: from that day the pattern before it returns.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lifecycle_assets.config import LifecycleConfig
from lifecycle_assets.records import (
    GroundTruthRecord,
    LogWriter,
    PredictionRecord,
    ScheduledRecord,
)

if TYPE_CHECKING:  # scoring needs torch; the simulator's vocabularies and log rows do not
    from lifecycle_assets.training.artifact import ModelArtifact

NUMERIC_FEATURES: tuple[str, ...] = (
    "amount",
    "merchant_risk",
    "hour",
    "card_age_days",
    "txn_count_24h",
)
CATEGORICAL_FEATURES: tuple[str, ...] = ("merchant_category", "country", "channel")

MERCHANT_CATEGORIES: tuple[str, ...] = (
    "grocery",
    "restaurant",
    "fuel",
    "retail",
    "electronics",
    "travel",
    "digital_goods",
    "gaming",
)
COUNTRIES: tuple[str, ...] = ("US", "GB", "DE", "FR", "BR", "NG")
CHANNELS: tuple[str, ...] = ("online", "pos", "atm", "moto")

N_CARDS = 20_000
# Cards are reissued (new card, age 0) after this many days, so the age distribution of the
# population is stationary and "new card" stays as common on day 500 as on day 0.
CARD_LIFETIME_DAYS = 1095
SECONDS_PER_DAY = 86_400
DOMESTIC = 0  # index of the issuing country in COUNTRIES: every other country is foreign

# Independent random streams, so adding draws to one never shifts another.
_STREAM_CARDS, _STREAM_PAYMENTS, _STREAM_SCHEDULED, _STREAM_CALIBRATION = 0, 1, 2, 3

_CATEGORY_P = np.array([0.22, 0.17, 0.10, 0.16, 0.08, 0.06, 0.13, 0.08])
# Typical ticket size (median, in currency units) per category.
_CATEGORY_MEDIAN_AMOUNT = np.array([45.0, 30.0, 50.0, 60.0, 250.0, 400.0, 15.0, 25.0])
# Mean merchant risk score per category (the acquirer's score of the merchant, in [0, 1]).
_CATEGORY_RISK = np.array([0.10, 0.12, 0.10, 0.20, 0.35, 0.30, 0.40, 0.50])
# P(channel | category), columns in CHANNELS order.
_CHANNEL_P = np.array(
    [
        [0.15, 0.78, 0.05, 0.02],
        [0.20, 0.75, 0.02, 0.03],
        [0.05, 0.90, 0.03, 0.02],
        [0.40, 0.55, 0.02, 0.03],
        [0.60, 0.35, 0.01, 0.04],
        [0.75, 0.10, 0.00, 0.15],
        [0.97, 0.00, 0.00, 0.03],
        [0.90, 0.05, 0.00, 0.05],
    ]
)
_COUNTRY_P = np.array([0.84, 0.05, 0.03, 0.03, 0.03, 0.02])
_TRAVEL_COUNTRY_P = np.array([0.45, 0.15, 0.12, 0.12, 0.09, 0.07])
# Daytime-heavy traffic by hour of day (relative weights).
_HOUR_P = np.array(
    [
        *(1.0, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 4.0, 5.0, 5.5, 6.0),
        *(6.5, 6.0, 5.5, 5.5, 6.0, 6.5, 6.5, 6.0, 5.0, 4.0, 3.0, 2.0),
    ]
)
_HOUR_P = _HOUR_P / _HOUR_P.sum()

_EVERYDAY = ("grocery", "fuel", "restaurant")
_CALIBRATION_ROWS = 100_000
_DAY_CACHE_SIZE = 8


@dataclass(frozen=True)
class Payment:
    """One card payment as the service sees it, plus the truth only the simulator knows."""

    request_id: str
    card_id: str
    card_number: str
    event_time: dt.datetime
    features: dict[str, float | str]
    is_fraud: bool
    # Fraud only: when the chargeback (the label) arrives. Legit payments never get one.
    chargeback_time: dt.datetime | None


@dataclass(frozen=True)
class ScheduledPayment:
    """A recurring charge known a day ahead, scored offline into the lookup store."""

    scheduled_payment_id: str
    card_id: str
    scheduled_time: dt.datetime
    features: dict[str, float | str]


@dataclass(frozen=True)
class _Cards:
    weights: np.ndarray  # P(a payment is on this card): heavy users recur more often
    base_age: np.ndarray  # card age in days on day 0
    txn_rate: np.ndarray  # the card's mean number of payments in 24 hours


@dataclass(frozen=True)
class _Columns:
    """A batch of payments as arrays (sorted by time); dataclasses are built at the end."""

    seconds: np.ndarray  # seconds since midnight UTC
    card: np.ndarray
    amount: np.ndarray
    merchant_risk: np.ndarray
    hour: np.ndarray
    card_age_days: np.ndarray
    txn_count_24h: np.ndarray
    category: np.ndarray
    country: np.ndarray
    channel: np.ndarray

    def __len__(self) -> int:
        return len(self.seconds)

    def feature_dicts(self) -> list[dict[str, float | str]]:
        cats = [MERCHANT_CATEGORIES[i] for i in self.category.tolist()]
        countries = [COUNTRIES[i] for i in self.country.tolist()]
        channels = [CHANNELS[i] for i in self.channel.tolist()]
        return [
            {
                "amount": a,
                "merchant_risk": r,
                "hour": h,
                "card_age_days": g,
                "txn_count_24h": t,
                "merchant_category": c,
                "country": co,
                "channel": ch,
            }
            for a, r, h, g, t, c, co, ch in zip(
                self.amount.tolist(),
                self.merchant_risk.tolist(),
                self.hour.tolist(),
                self.card_age_days.tolist(),
                self.txn_count_24h.tolist(),
                cats,
                countries,
                channels,
                strict=True,
            )
        ]


@dataclass(frozen=True)
class _Day:
    columns: _Columns
    is_fraud: np.ndarray
    # Chargeback arrival as (whole days after the event date, second of that day).
    chargeback_days: np.ndarray
    chargeback_seconds: np.ndarray


def _rng(seed: int, stream: int, *key: int) -> np.random.Generator:
    # SeedSequence wants non-negative entropy; the modulus maps any int seed one-to-one.
    return np.random.default_rng([seed % 2**64, stream, *key])


def _draw_cards(rng: np.random.Generator) -> _Cards:
    weights = rng.lognormal(0.0, 0.8, N_CARDS)
    return _Cards(
        weights=weights / weights.sum(),
        base_age=rng.integers(0, CARD_LIFETIME_DAYS, N_CARDS),
        txn_rate=rng.gamma(2.0, 1.0, N_CARDS),
    )


def _pick_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of `probs` (each row a distribution), vectorised."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs))[:, None] * cum[:, -1:]
    return np.minimum((u >= cum).sum(axis=1), probs.shape[1] - 1)


def _draw_columns(rng: np.random.Generator, cards: _Cards, n: int, day_index: int) -> _Columns:
    """Features for `n` payments on one day; the draw order is fixed, so the day is too."""
    hour = rng.choice(24, size=n, p=_HOUR_P)
    seconds = np.sort(hour * 3600 + rng.integers(0, 3600, n))
    hour = seconds // 3600  # re-derived after sorting so it matches the event time
    card = rng.choice(N_CARDS, size=n, p=cards.weights)
    category = rng.choice(len(MERCHANT_CATEGORIES), size=n, p=_CATEGORY_P)
    median = _CATEGORY_MEDIAN_AMOUNT[category]
    amount = np.maximum(np.round(median * rng.lognormal(0.0, 0.8, n), 2), 0.5)
    mean_risk = _CATEGORY_RISK[category]
    concentration = 8.0
    merchant_risk = np.round(
        rng.beta(mean_risk * concentration, (1 - mean_risk) * concentration), 4
    )
    channel = _pick_rows(rng, _CHANNEL_P[category])
    is_travel = category == MERCHANT_CATEGORIES.index("travel")
    country = _pick_rows(rng, np.where(is_travel[:, None], _TRAVEL_COUNTRY_P, _COUNTRY_P))
    card_age = (cards.base_age[card] + day_index) % CARD_LIFETIME_DAYS
    txn_count = rng.poisson(cards.txn_rate[card])
    return _Columns(
        seconds=seconds,
        card=card,
        amount=amount,
        merchant_risk=merchant_risk,
        hour=hour.astype(np.float64),
        card_age_days=card_age.astype(np.float64),
        txn_count_24h=txn_count.astype(np.float64),
        category=category,
        country=country,
        channel=channel,
    )


def _fraud_logit(c: _Columns, drifted: bool) -> np.ndarray:
    """The fraud pattern, without intercept. Before drift: risky merchants, card-not-present,
    abroad, large amounts at night. After: small card-present and ATM payments at everyday
    merchants on busy cards (card testing, skimming). New cards and night hours stay risky, so
    an old model keeps some skill, but loses a lot of it."""
    log_amount = np.log(c.amount / 50.0)
    cat = c.category
    channel = c.channel
    new_card = (c.card_age_days < 30).astype(np.float64)
    night = (c.hour < 6).astype(np.float64)
    if not drifted:
        return (
            5.0 * c.merchant_risk
            + 1.4 * (channel == CHANNELS.index("online"))
            + 1.0 * (channel == CHANNELS.index("moto"))
            + 1.6 * (c.country != DOMESTIC)
            + 0.8 * log_amount
            + 1.8 * night
            + 1.5 * new_card
            + 0.3 * c.txn_count_24h
        )
    everyday = np.isin(cat, [MERCHANT_CATEGORIES.index(x) for x in _EVERYDAY])
    return (
        1.5 * everyday
        + 0.6 * (channel == CHANNELS.index("pos"))
        + 1.5 * (channel == CHANNELS.index("atm"))
        - 0.6 * log_amount
        + 0.7 * c.txn_count_24h
        + 0.8 * night
        + 1.8 * new_card
    )


def _calibrate_intercept(logit: np.ndarray, rate: float) -> float:
    """The intercept b with mean(sigmoid(b + logit)) == rate, by bisection (it is monotone)."""
    lo, hi = -40.0, 40.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if np.mean(1 / (1 + np.exp(-(mid + logit)))) < rate:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@functools.lru_cache(maxsize=N_CARDS)
def card_number(card_id: str) -> str:
    """A stable 16-digit, Luhn-valid card number for a card id: the example's PII column."""
    digest = int(hashlib.sha256(card_id.encode()).hexdigest(), 16)
    body = "4" + f"{digest % 10**14:014d}"
    total = 0
    # Luhn: double every second digit from the right, counting the check digit as first.
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


def _card_id(index: int) -> str:
    return f"card-{index:05d}"


def _request_id(date: dt.date, index: int) -> str:
    # Payments are numbered in event-time order, so ids sort like the log.
    return f"pay-{date:%Y%m%d}-{index:06d}"


def _check_features(config: LifecycleConfig) -> None:
    problem = config.problem
    problems = []
    for kind, want, got in (
        ("numeric_features", NUMERIC_FEATURES, problem.numeric_features),
        ("categorical_features", CATEGORICAL_FEATURES, problem.categorical_features),
    ):
        missing = sorted(set(want) - set(got))
        unknown = sorted(set(got) - set(want))
        if missing or unknown:
            problems.append(
                f"problem.{kind}: the simulator does not produce {unknown}"
                if unknown and not missing
                else f"problem.{kind}: missing {missing}, unknown {unknown}"
            )
    if problems:
        raise ValueError(
            "the fraud simulator's features do not match the config: "
            + "; ".join(problems)
            + f" (it produces numeric {list(NUMERIC_FEATURES)}, "
            f"categorical {list(CATEGORICAL_FEATURES)})"
        )
    if problem.task != "binary":
        raise ValueError("problem.task: the fraud simulator produces a binary label")


class FraudSimulator:
    """Card payments, chargebacks and scheduled charges for any simulated day, reproducibly."""

    def __init__(self, config: LifecycleConfig) -> None:
        _check_features(config)
        self.config = config
        self.sim = config.simulation
        self.seed = self.sim.seed
        self._cards = _draw_cards(_rng(self.seed, _STREAM_CARDS))
        # One intercept per regime, fitted on a fixed reference sample, keeps the fraud rate
        # at `fraud_rate` on both sides of the drift while the pattern changes.
        reference = _draw_columns(
            _rng(self.seed, _STREAM_CALIBRATION), self._cards, _CALIBRATION_ROWS, 0
        )
        self._intercepts = {
            drifted: _calibrate_intercept(_fraud_logit(reference, drifted), self.sim.fraud_rate)
            for drifted in (False, True)
        }
        self._days: OrderedDict[int, _Day] = OrderedDict()
        self._lock = threading.Lock()

    def date(self, day_index: int) -> dt.date:
        return self.sim.start_date + dt.timedelta(days=day_index)

    def day_index(self, date: dt.date) -> int:
        return (date - self.sim.start_date).days

    def is_drifted(self, day_index: int) -> bool:
        start, end = self.sim.drift_day, self.sim.drift_end_day
        return start is not None and day_index >= start and (end is None or day_index < end)

    def _midnight(self, day_index: int) -> dt.datetime:
        return dt.datetime.combine(self.date(day_index), dt.time(), tzinfo=dt.UTC)

    def _day(self, day_index: int) -> _Day:
        # A small cache: chargeback lookbacks regenerate the same few recent days.
        with self._lock:
            cached = self._days.get(day_index)
            if cached is not None:
                self._days.move_to_end(day_index)
                return cached
        day = self._generate_day(day_index)
        with self._lock:
            self._days[day_index] = day
            if len(self._days) > _DAY_CACHE_SIZE:
                self._days.popitem(last=False)
        return day

    def _generate_day(self, day_index: int) -> _Day:
        rng = _rng(self.seed, _STREAM_PAYMENTS, day_index)
        n = self.sim.payments_per_day
        cols = _draw_columns(rng, self._cards, n, day_index)
        drifted = self.is_drifted(day_index)
        logit = self._intercepts[drifted] + _fraud_logit(cols, drifted)
        is_fraud = rng.random(n) < 1 / (1 + np.exp(-logit))
        low, high = self.sim.chargeback_delay_days
        cb_days = rng.integers(low, high + 1, n)
        # A same-day chargeback must not precede its payment.
        cb_seconds = rng.integers(np.where(cb_days == 0, cols.seconds, 0), SECONDS_PER_DAY)
        return _Day(cols, is_fraud, cb_days, cb_seconds)

    def payments(self, day_index: int) -> list[Payment]:
        """The day's `payments_per_day` payments, in event-time order."""
        if day_index < 0:
            return []
        day = self._day(day_index)
        cols = day.columns
        midnight = self._midnight(day_index)
        date = self.date(day_index)
        out = []
        for i, (sec, card, feats, fraud, cb_d, cb_s) in enumerate(
            zip(
                cols.seconds.tolist(),
                cols.card.tolist(),
                cols.feature_dicts(),
                day.is_fraud.tolist(),
                day.chargeback_days.tolist(),
                day.chargeback_seconds.tolist(),
                strict=True,
            )
        ):
            card_id = _card_id(card)
            out.append(
                Payment(
                    request_id=_request_id(date, i),
                    card_id=card_id,
                    card_number=card_number(card_id),
                    event_time=midnight + dt.timedelta(seconds=sec),
                    features=feats,
                    is_fraud=fraud,
                    chargeback_time=(
                        midnight + dt.timedelta(days=cb_d, seconds=cb_s) if fraud else None
                    ),
                )
            )
        return out

    def chargebacks_arriving(self, day_index: int) -> list[GroundTruthRecord]:
        """Label events (fraud = 1.0) whose chargeback lands on this day, in arrival order."""
        low, high = self.sim.chargeback_delay_days
        midnight = self._midnight(day_index)
        records = []
        for origin in range(max(0, day_index - high), day_index - low + 1):
            day = self._day(origin)
            hits = np.flatnonzero(day.is_fraud & (day.chargeback_days == day_index - origin))
            date = self.date(origin)
            records += [
                GroundTruthRecord(
                    request_id=_request_id(date, i),
                    label=1.0,
                    observed_time=midnight + dt.timedelta(seconds=int(day.chargeback_seconds[i])),
                )
                for i in hits.tolist()
            ]
        records.sort(key=lambda r: (r.observed_time, r.request_id))
        return records

    def scheduled_payments(self, day_index: int) -> list[ScheduledPayment]:
        """Recurring charges due on day_index + 1, known (and scored offline) on day_index.

        Drawn from the same traffic distribution as live payments, from their own stream.
        """
        target = day_index + 1
        n = self.sim.scheduled_payments_per_day
        cols = _draw_columns(_rng(self.seed, _STREAM_SCHEDULED, target), self._cards, n, target)
        midnight = self._midnight(target)
        stamp = self.date(target).strftime("%Y%m%d")
        return [
            ScheduledPayment(
                scheduled_payment_id=f"sched-{stamp}-{i:05d}",
                card_id=_card_id(card),
                scheduled_time=midnight + dt.timedelta(seconds=sec),
                features=feats,
            )
            for i, (sec, card, feats) in enumerate(
                zip(cols.seconds.tolist(), cols.card.tolist(), cols.feature_dicts(), strict=True)
            )
        ]

    def write_day(
        self, writer: LogWriter, day_index: int, artifact: ModelArtifact | None
    ) -> dict[str, int]:
        """The no-service path: log the day's predictions and arriving labels, then flush.

        With no artifact (cold start) the payments are logged unscored. `logged_at` is the
        event time: the simulated clock, not the wall clock.
        """
        payments = self.payments(day_index)
        version: str | None = None
        scores: list[float | None] = [None] * len(payments)
        decisions: list[str | None] = [None] * len(payments)
        if artifact is not None and payments:
            # One batch call, as the service would score a burst of requests.
            raw = artifact.score_rows([p.features for p in payments])
            version = artifact.version
            scores = [float(s) for s in raw]
            decisions = list(artifact.decide(raw))
        predictions = [
            PredictionRecord(
                request_id=p.request_id,
                entity_id=p.card_id,
                event_time=p.event_time,
                features=dict(p.features),
                model_version=version,
                score=s,
                decision=d,
                logged_at=p.event_time,
            )
            for p, s, d in zip(payments, scores, decisions, strict=True)
        ]
        labels = self.chargebacks_arriving(day_index)
        # Tomorrow's recurring charges, known today: the scheduled-items log that
        # `offline_predictions` scores into the lookup store.
        scheduled = [
            ScheduledRecord(s.scheduled_payment_id, s.card_id, s.scheduled_time, dict(s.features))
            for s in self.scheduled_payments(day_index)
        ]
        writer.write_predictions(predictions)
        writer.write_ground_truth(labels)
        writer.write_scheduled(scheduled)
        writer.flush()
        return {"predictions": len(predictions), "labels": len(labels), "scheduled": len(scheduled)}
