"""The plain-ASGI baseline: Starlette (FastAPI's core, minus its validation layer) on uvicorn,
scoring the same artifact with the same function, no logging and no post-processing rules.

    LIFECYCLE_HOME=... uvicorn starlette_app:app --app-dir benchmarks/serving_apps
"""

import json
import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lifecycle_assets.home import LifecycleHome
from lifecycle_assets.registry.registry import alias_version, load_version

home = LifecycleHome(Path(os.environ["LIFECYCLE_HOME"]))
name = home.config().problem.name
version = alias_version(home, "production")
assert version is not None, "promote a model first"
artifact = load_version(home, name, version)


async def predict(request: Request) -> Response:
    body = json.loads(await request.body())
    scores = artifact.score_rows([body["features"]])
    decision = artifact.decide(scores)[0]
    out = {
        "request_id": body.get("request_id"),
        "model_version": version,
        "score": float(scores[0]),
        "decision": decision,
    }
    return Response(json.dumps(out), media_type="application/json")


app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])
