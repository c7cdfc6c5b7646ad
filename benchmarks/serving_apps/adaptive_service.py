"""The prediction runtime behind BentoML's adaptive batching, to measure whether batching
helps (`benchmarks/serving.py`). A client sends `[request]`; BentoML merges concurrent
requests into one list, scored in one call."""

import bentoml

from bentos.service import SERVER_SETTINGS
from lifecycle_assets.serving.requests import Prediction, PredictRequest
from lifecycle_assets.serving.runtime import ServingRuntime


@bentoml.service(name="adaptive", **SERVER_SETTINGS)
class Adaptive:
    def __init__(self) -> None:
        self.runtime = ServingRuntime.from_environment()

    @bentoml.api(route="/predict", batchable=True, max_batch_size=64, max_latency_ms=20)
    async def predict(self, requests: list[PredictRequest], /) -> list[Prediction]:
        return self.runtime.predict(requests)

    @bentoml.on_shutdown
    def close(self) -> None:
        self.runtime.close()
