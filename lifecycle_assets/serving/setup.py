"""What a prediction service needs before it starts, checked without loading a model: the
tokens its config requires, a built Bento's serving directory, the config packed beside
its model. Light on purpose: `bentos/service.py` runs these checks in BentoML's serving
process before any worker starts, and that process never loads PyTorch."""

from __future__ import annotations

import os
from pathlib import Path

from lifecycle_assets.config import PACKED_CONFIG, ServingConfig
from lifecycle_assets.errors import LifecycleError

FEEDBACK_TOKEN_ENV = "LIFECYCLE_FEEDBACK_TOKEN"
PREDICT_TOKEN_ENV = "LIFECYCLE_PREDICT_TOKEN"
# A built Bento's service keeps its prediction log (and lookup store) under this directory.
SERVING_DIR_ENV = "LIFECYCLE_SERVING_DIR"


class ServingSetupError(LifecycleError, RuntimeError):
    """The service cannot start with this configuration; the message says what to set."""


def packed_config_path(model_dir: Path) -> Path:
    """The config packed beside a Bento's model; refused when the model has none."""
    path = Path(model_dir) / PACKED_CONFIG
    if not path.is_file():
        raise ServingSetupError(
            f"the packed model in {model_dir} has no {PACKED_CONFIG}: it was registered "
            "before models carried their config; register it again and rebuild the Bento"
        )
    return path


def serving_dir_from_env(model: str) -> Path:
    """A built Bento's state directory (`LIFECYCLE_SERVING_DIR`); refused when unset."""
    value = os.environ.get(SERVING_DIR_ENV)
    if not value:
        raise ServingSetupError(
            f"this Bento serves {model} and logs every prediction: set {SERVING_DIR_ENV} to a "
            "writable directory for its log and lookup store"
        )
    return Path(value)


def token_problem(policy: ServingConfig, config_path: Path | None) -> str | None:
    """Why a service under `policy` cannot start for want of a token in the environment
    (`serving.feedback_auth` / `predict_auth: required`), or None."""
    for field, env in (("feedback_auth", FEEDBACK_TOKEN_ENV), ("predict_auth", PREDICT_TOKEN_ENV)):
        if not os.environ.get(env) and getattr(policy, field) == "required":
            where = f" in {config_path}" if config_path is not None else ""
            return (
                f"serving.{field} is `required` but no token is set: export {env}=<secret> "
                f"(or set serving.{field}: none{where})"
            )
    return None
