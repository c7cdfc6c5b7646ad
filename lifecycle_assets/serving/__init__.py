"""The serving pipeline's plain code: the request contract and one worker's runtime.

`bentos/service.py` (BentoML, no Dagster) wraps `ServingRuntime` in HTTP endpoints.
"""
