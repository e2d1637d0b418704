"""GET /health (process alive, engine not dead), GET /ready (model loaded and warmed up,
taking work; 503 with the state meanwhile: loading, warming, draining, engine_dead),
GET /metrics (Prometheus text)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from server.api.state import Readiness, server_state

router = APIRouter()


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    if server_state(request.app).engine_dead:
        return JSONResponse({"status": Readiness.FAILED}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    state = server_state(request.app)
    if state.engine_dead:
        return JSONResponse({"status": Readiness.FAILED}, status_code=503)
    lifecycle = state.lifecycle
    return JSONResponse({"status": lifecycle.readiness},
                        status_code=200 if lifecycle.ready else 503)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(server_state(request.app).metrics.render(),
                    media_type="text/plain; version=0.0.4; charset=utf-8")
