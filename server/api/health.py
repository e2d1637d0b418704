"""GET /health (process alive, engine not dead), GET /ready (model loaded, taking work),
GET /metrics (Prometheus text)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

router = APIRouter()


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    lifecycle = request.app.state.lifecycle
    if lifecycle.failed:
        return JSONResponse({"status": "engine_dead"}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    lifecycle = request.app.state.lifecycle
    if lifecycle.failed:
        return JSONResponse({"status": "engine_dead"}, status_code=503)
    if lifecycle.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    if getattr(request.app.state, "chat", None) is None:
        return JSONResponse({"status": "loading"}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(),
                    media_type="text/plain; version=0.0.4; charset=utf-8")
