"""The reference: a FastAPI endpoint that parses the same JSON body as /predict and answers a constant (run by
run.py under the same uvicorn settings as the service)."""

import orjson
from fastapi import FastAPI, Request
from starlette.responses import Response

app = FastAPI()


@app.post("/bare")
async def bare(request: Request) -> Response:
    body = orjson.loads(await request.body())
    count = len(body) if isinstance(body, list) else 1
    return Response(b'{"ok":true,"records":%d}' % count, media_type="application/json")
