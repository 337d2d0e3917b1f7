"""The naive reference: a pandas frame and ``model.predict`` per request (DESIGN.md's "what not to do")."""

import os

import orjson
import pandas as pd
from fastapi import FastAPI, Request
from starlette.responses import Response

from deep_learning_workflow.bundle import read_bundle
from deep_learning_workflow.model_inputs import predict_probabilities

bundle = read_bundle(os.environ["BENCH_BUNDLE"])
model, roles = bundle.model, bundle.roles
app = FastAPI()


@app.post("/predict")
async def predict(request: Request) -> Response:
    record = orjson.loads(await request.body())
    probabilities = predict_probabilities(model, pd.DataFrame([record]), roles)
    return Response(
        orjson.dumps({"probability": float(probabilities[0, -1])}), media_type="application/json"
    )
