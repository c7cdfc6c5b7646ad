"""`lifecycle.yaml` loading: the example spells out the defaults; wrong configs name the field."""

from __future__ import annotations

import pytest
import yaml

from lifecycle_assets.config import (
    MAX_LOOKBACK_DAYS,
    ConfigError,
    LifecycleConfig,
    example_config_path,
    load_config,
    parse_config,
)


def test_example_config_spells_out_the_defaults():
    """Every default, except the model family: the example's simulator is a smooth generated
    problem that names `mlp` on purpose (measured, and said in its comment); the default
    family was chosen on public data."""
    loaded = load_config()
    defaults = LifecycleConfig()
    differing = [
        name
        for name in LifecycleConfig.model_fields
        if getattr(loaded, name) != getattr(defaults, name)
    ]
    assert differing == ["training"]
    assert loaded.training.model.family == "mlp" and defaults.training.model.family == "gbdt"
    assert loaded.training.model_copy(update={"model": defaults.training.model}) == (
        defaults.training
    )
    assert loaded.model_copy(update={"training": defaults.training}) == defaults


def test_example_config_names_every_field_explicitly():
    """The example is meant to be copied and edited, so no section or field may be left out."""
    data = yaml.safe_load(example_config_path().read_text())
    for section, model in LifecycleConfig.model_fields.items():
        assert section in data, section
        assert set(data[section]) == set(model.annotation.model_fields), section


def test_load_config_path_equals_default_load():
    assert load_config(example_config_path()) == load_config(None)


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_empty_file_means_all_defaults(tmp_path, text):
    path = tmp_path / "lifecycle.yaml"
    path.write_text(text)
    assert load_config(path) == LifecycleConfig()


def test_a_valid_override_is_applied(tmp_path):
    path = tmp_path / "lifecycle.yaml"
    path.write_text("windows:\n  train_days: 20\nvalidation:\n  margin: 0.02\n")
    cfg = load_config(path)
    assert cfg.windows.train_days == 20
    assert cfg.validation.margin == 0.02
    assert cfg.windows.test_days == LifecycleConfig().windows.test_days


def test_config_is_frozen():
    cfg = LifecycleConfig()
    with pytest.raises(ValueError):
        cfg.windows.train_days = 3  # type: ignore[misc]


WRONG_CONFIGS = [
    # (id, yaml text, substrings the one-line message must contain)
    ("unknown-top-level", "windowz:\n  train_days: 3\n", ["'windowz'", "unknown field"]),
    ("unknown-nested", "windows:\n  train_dayz: 3\n", ["'windows.train_dayz'", "unknown field"]),
    ("wrong-type-int", "windows:\n  train_days: ten\n", ["'windows.train_days'", "'ten'"]),
    ("wrong-type-fraction", "windows:\n  train_days: 1.5\n", ["'windows.train_days'", "1.5"]),
    ("wrong-type-section", "problem: card-fraud\n", ["'problem'"]),
    ("wrong-type-list", "problem:\n  numeric_features: 7\n", ["'problem.numeric_features'"]),
    ("wrong-literal-task", "problem:\n  task: multiclass\n", ["'problem.task'", "multiclass"]),
    ("wrong-literal-metric", "validation:\n  metric: accuracy\n", ["'validation.metric'"]),
    ("train-days-zero", "windows:\n  train_days: 0\n", ["'windows.train_days'", "0"]),
    ("min-rows-too-small", "windows:\n  min_test_rows: 5\n", ["'windows.min_test_rows'"]),
    ("maturity-too-long", "labels:\n  maturity_days: 31\n", ["'labels.maturity_days'"]),
    ("alpha-too-big", "validation:\n  alpha: 0.5\n", ["'validation.alpha'"]),
    ("margin-negative", "validation:\n  margin: -0.1\n", ["'validation.margin'"]),
    ("bootstrap-few", "validation:\n  bootstrap_samples: 10\n", ["'validation.bootstrap_samples'"]),
    ("lr-zero", "training:\n  learning_rate: 0\n", ["'training.learning_rate'"]),
    ("max-rows-zero", "training:\n  max_rows: 0\n", ["'training.max_rows'"]),
    (
        "threshold-above-one",
        "postprocessing:\n  decline_threshold: 1.5\n",
        ["'postprocessing.decline_threshold'"],
    ),
    (
        "review-above-decline",
        "postprocessing:\n  review_threshold: 0.8\n  decline_threshold: 0.5\n",
        ["'postprocessing'", "review_threshold", "decline_threshold"],
    ),
    (
        "duplicate-feature",
        "problem:\n  numeric_features: [amount, amount]\n",
        ["'problem'", "'amount'", "twice"],
    ),
    (
        "feature-named-like-label",
        "problem:\n  categorical_features: [is_fraud]\n",
        ["'problem'", "'is_fraud'", "twice"],
    ),
    (
        "pii-is-feature",
        "problem:\n  pii_columns: [card_number, amount]\n",
        ["'problem'", "PII", "amount"],
    ),
    (
        "no-features",
        "problem:\n  numeric_features: []\n  categorical_features: []\n",
        ["'problem'", "numeric_features"],
    ),
    (
        "auc-on-regression",
        "problem:\n  task: regression\n",
        ["validation.metric", "problem.task"],
    ),
    ("rmse-on-binary", "validation:\n  metric: rmse\n", ["validation.metric", "regression"]),
    (
        "regression-infers-negatives",
        "problem:\n  task: regression\nvalidation:\n  metric: rmse\n",
        ["unlabeled_after_maturity", "drop"],
    ),
    (
        "lookback-too-long",
        f"windows:\n  train_days: {MAX_LOOKBACK_DAYS}\n",
        ["windows.train_days", str(MAX_LOOKBACK_DAYS)],
    ),
    (
        "delays-reversed",
        "simulation:\n  chargeback_delay_days: [3, 1]\n",
        ["'simulation'", "chargeback_delay_days"],
    ),
    (
        "simulation-before-partitions",
        "simulation:\n  start_date: 2025-01-01\n",
        ["'simulation'", "start_date"],
    ),
    ("not-a-mapping-list", "- problem\n- windows\n", ["mapping"]),
    ("not-a-mapping-scalar", "just words\n", ["mapping"]),
    ("invalid-yaml", "windows: [train_days: 3\n", ["not valid YAML"]),
    ("invalid-yaml-tabs", "windows:\n\ttrain_days: 3\n", ["not valid YAML"]),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in WRONG_CONFIGS], ids=[c[0] for c in WRONG_CONFIGS]
)
def test_wrong_config_names_the_field_in_one_line(tmp_path, text, expected):
    path = tmp_path / "lifecycle.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    for part in expected:
        assert part in message, message
    assert "\n" not in message
    assert "Traceback" not in message
    assert "pydantic" not in message.lower()
    # raised `from None`: no chained pydantic/yaml error is printed under it
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_lookback_exactly_at_the_limit_is_accepted():
    maturity, test_days = 3, 2
    cfg = parse_config(
        {
            "labels": {"maturity_days": maturity},
            "windows": {"train_days": MAX_LOOKBACK_DAYS - maturity - test_days, "test_days": 2},
        }
    )
    lookback = cfg.labels.maturity_days + cfg.windows.train_days + cfg.windows.test_days
    assert lookback == MAX_LOOKBACK_DAYS
    with pytest.raises(ConfigError, match="exceeds"):
        parse_config(
            {
                "labels": {"maturity_days": maturity},
                "windows": {"train_days": MAX_LOOKBACK_DAYS - maturity - 1, "test_days": 2},
            }
        )


@pytest.mark.parametrize(
    ("task", "metric"),
    [("binary", "roc_auc"), ("binary", "log_loss"), ("regression", "rmse"), ("regression", "mae")],
)
def test_metric_compatible_with_task_is_accepted(task, metric):
    labels = {"unlabeled_after_maturity": "drop" if task == "regression" else "negative"}
    cfg = parse_config(
        {"problem": {"task": task}, "validation": {"metric": metric}, "labels": labels}
    )
    assert (cfg.problem.task, cfg.validation.metric) == (task, metric)


def test_missing_file_says_how_to_fix_it(tmp_path):
    path = tmp_path / "nowhere" / "lifecycle.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert "not found" in message
    assert "lifecycle init" in message
    assert "\n" not in message


def test_a_directory_is_not_a_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path)


def test_parse_config_names_its_source():
    with pytest.raises(ConfigError, match=r"^run config: field 'windows\.test_days'"):
        parse_config({"windows": {"test_days": 0}}, source="run config")


def test_several_errors_are_counted_not_listed():
    with pytest.raises(ConfigError) as info:
        parse_config({"windows": {"train_days": 0, "test_days": 0}})
    message = str(info.value)
    assert "(and 1 more)" in message
    assert "\n" not in message


def test_a_config_is_parsed_once_per_content(tmp_path) -> None:
    """Loading the same file again reuses the parsed config; any edit, even one that keeps
    the file's size and lands within the same clock tick, is seen on the next load."""
    path = tmp_path / "lifecycle.yaml"
    text = example_config_path().read_text()
    path.write_text(text)
    first = load_config(path)
    assert load_config(path) is first
    edited = text.replace("cooldown_days: 3", "cooldown_days: 4", 1)
    assert edited != text and len(edited) == len(text)
    path.write_text(edited)
    assert load_config(path).monitoring.cooldown_days == 4
    path.write_text("windows: {train_days: ten}\n")
    with pytest.raises(ConfigError, match="train_days"):
        load_config(path)
