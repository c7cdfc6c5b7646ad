"""The BentoML echo baseline: the same request model, server settings (async API, access log
off, one worker) and response shape as the prediction service, and no work in between."""

import bentoml

from bentos.service import SERVER_SETTINGS
from lifecycle_assets.serving.requests import Prediction, PredictRequest


@bentoml.service(name="echo", **SERVER_SETTINGS)
class Echo:
    @bentoml.api(route="/predict")
    async def predict(self, request: PredictRequest, /) -> Prediction:
        return Prediction(
            request_id=request.request_id or "echo",
            model_version="echo",
            score=0.5,
            probability=0.5,
            decision="review",
        )
