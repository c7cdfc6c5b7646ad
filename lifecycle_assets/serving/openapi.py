"""The service's OpenAPI document: BentoML's, generated from the `@bentoml.api` methods and
their request and response models, completed with what only the service knows.

- `info`: the problem's name, the project's version and what the service does, instead of
  BentoML's build tag ("lifecycle:dev") and boilerplate.
- `features`: the config's features with their types and declared domains
  (`RequestValidator.features_schema`), and a request example that is answered with a 200,
  where BentoML can only say "an object".
- the routes the edge answers that have no `@bentoml.api` method: `GET
  /lookup/{scheduled_payment_id}` and `GET /healthz`.
"""

from __future__ import annotations

import copy
from typing import Any

from lifecycle_assets.serving.requests import (
    ID_PATTERN,
    MAX_ID_LENGTH,
    Health,
    LookupResponse,
    RequestValidator,
)

DESCRIPTION = (
    "Scores requests for **{name}** with the model in production, logs every prediction "
    "and records ground truth for the loop that retrains it. `POST /predict` (one request) "
    "and `POST /predict_batch` (up to 1000) answer with the model version, the raw score, "
    "its calibrated probability and the decision after the business rules; `POST /feedback` "
    "records labels (`Authorization: Bearer <token>`); `GET /lookup/{{id}}` serves a "
    "precomputed prediction; `GET /healthz` says which version serves. Every error is "
    '`{{"error": reason}}` (plus `detail` for a schema error).'
)
ERROR = {
    "description": "refused, with the reason",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}},
                "required": ["error"],
            }
        }
    },
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _with_features(node: Any, features: dict[str, Any]) -> Any:
    """`node` with every request object's `features` property replaced by `features`."""
    if isinstance(node, list):
        return [_with_features(item, features) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _with_features(value, features) for key, value in node.items()}
    props = out.get("properties")
    if isinstance(props, dict) and "features" in props and "entity_id" in props:
        out["properties"] = {**props, "features": features}
    return out


def openapi_document(
    spec: dict[str, Any], validator: RequestValidator, problem_name: str, version: str
) -> dict[str, Any]:
    """BentoML's document `spec`, completed for the problem `validator` checks."""
    doc = _with_features(copy.deepcopy(spec), validator.features_schema())
    doc["info"] = {
        **doc.get("info", {}),
        "title": f"lifecycle: {problem_name}",
        "version": version,
        "description": DESCRIPTION.format(name=problem_name),
    }
    paths = doc.setdefault("paths", {})
    example = {"entity_id": "customer-1", "features": validator.features_example()}
    for path, body in (("/predict", example), ("/predict_batch", {"requests": [example]})):
        content = paths.get(path, {}).get("post", {}).get("requestBody", {}).get("content", {})
        if "application/json" in content:
            content["application/json"]["example"] = body
    paths["/lookup/{scheduled_payment_id}"] = {
        "get": {
            "summary": "A scheduled item's precomputed prediction (rescored when stale)",
            "operationId": "lifecycle__lookup_get",
            "parameters": [
                {
                    "name": "scheduled_payment_id",
                    "in": "path",
                    "required": True,
                    "schema": {
                        "type": "string",
                        "maxLength": MAX_ID_LENGTH,
                        "pattern": ID_PATTERN,
                    },
                }
            ],
            "responses": {
                "200": _json(LookupResponse.model_json_schema(), "the item's prediction"),
                "400": ERROR,
                "404": ERROR,
            },
        }
    }
    paths["/healthz"] = {
        "get": {
            "summary": "Which model version serves, and the prediction log's state",
            "operationId": "lifecycle__healthz",
            "responses": {
                "200": _json(Health.model_json_schema(), "the service's state"),
                "503": ERROR,
            },
        }
    }
    return doc
