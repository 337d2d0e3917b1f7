"""The service's OpenAPI document: FastAPI's, plus /predict (a plain ASGI route) with the bundle's record schema."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

JSON = "application/json"


def _error_content(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


PREDICT_RESPONSES = {
    "200": {
        "description": "Predictions",
        "content": {JSON: {"schema": {"$ref": "#/components/schemas/Prediction"}}},
    },
    "400": _error_content("Malformed JSON"),
    "408": _error_content("The body did not arrive in time"),
    "413": _error_content("Body or batch too large"),
    "415": _error_content("The body is not declared as JSON"),
    "422": _error_content("Invalid records, or a non-finite model output"),
    "503": _error_content("Not ready, or overloaded"),
}


def predict_request_schema(max_batch: int) -> dict[str, Any]:
    return {
        "oneOf": [
            {"$ref": "#/components/schemas/Record"},
            {
                "type": "array",
                "items": {"$ref": "#/components/schemas/Record"},
                "minItems": 1,
                "maxItems": max_batch,
            },
        ]
    }


def openapi_document(app: FastAPI, record: dict[str, Any], max_batch: int) -> dict[str, Any]:
    """The OpenAPI document, with /predict described by hand (its route is plain ASGI) from the record schema."""
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    request_schema = predict_request_schema(max_batch)
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components["Record"] = record
    components["Error"] = {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string"},
            "message": {"type": "string"},
            "problems": {"type": "array", "items": {"type": "object"}},
        },
    }
    single = {
        "type": "object",
        "required": [
            "request_id",
            "model_version",
            "variant",
            "probability",
            "label",
            "probabilities",
        ],
        "properties": {
            "request_id": {"type": "string"},
            "model_version": {"type": "string"},
            "variant": {"type": "string", "enum": ["primary", "canary"]},
            "probability": {"type": "number", "minimum": 0, "maximum": 1},
            "label": {"type": "string"},
            "probabilities": {"type": "object", "additionalProperties": {"type": "number"}},
        },
    }
    batch = {
        "type": "object",
        "required": ["request_id", "model_version", "variant", "predictions"],
        "properties": {
            "request_id": {"type": "string"},
            "model_version": {"type": "string"},
            "variant": {"type": "string", "enum": ["primary", "canary"]},
            "predictions": {"type": "array", "items": {"type": "object"}},
        },
    }
    components["Prediction"] = {"oneOf": [single, batch]}
    document["paths"] = {
        "/predict": {
            "post": {
                "summary": "Score one raw record or a batch of records",
                "operationId": "predict",
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": request_schema}},
                },
                "responses": PREDICT_RESPONSES,
            }
        },
        **document["paths"],
    }
    return document
