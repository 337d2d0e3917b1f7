"""The reference: a FastAPI endpoint that does nothing (run by run.py with the service's uvicorn settings)."""

from fastapi import FastAPI
from starlette.responses import Response

app = FastAPI()


@app.post("/bare")
async def bare() -> Response:
    return Response(b'{"ok":true}', media_type="application/json")
