"""The base of every error the CLI reports as one line (`lifecycle CMD: error: …`), and how a
broken data contract is put in one line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pydantic is imported where a contract is checked, not by every CLI start
    from pydantic import BaseModel


class LifecycleError(Exception):
    """An expected failure whose message says what is wrong and how to fix it."""


def contract_problem(model: type[BaseModel], data: Mapping[str, Any], what: str) -> str | None:
    """None when `data` meets the contract `model`; else one line naming what was checked,
    the first field that breaks it and why (`decision record: day: Field required`)."""
    from pydantic import ValidationError

    try:
        model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "value"
        return f"{what}: {field}: {first['msg']}"
    return None
