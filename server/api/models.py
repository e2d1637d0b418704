"""GET /v1/models."""

from __future__ import annotations

from fastapi import APIRouter, Request

from server.api.protocol import ModelCard, ModelList

router = APIRouter()


@router.get("/v1/models", response_model=ModelList)
async def list_models(request: Request) -> ModelList:
    settings = request.app.state.settings
    engine = getattr(request.app.state, "engine", None)
    return ModelList(data=[ModelCard(id=settings.model_name, root=settings.model,
                                     max_model_len=engine.max_model_len if engine else None)])
