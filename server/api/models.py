"""GET /v1/models."""

from __future__ import annotations

from fastapi import APIRouter, Request

from server.api.protocol import ModelCard, ModelList
from server.api.state import server_state

router = APIRouter()


@router.get("/v1/models", response_model=ModelList)
async def list_models(request: Request) -> ModelList:
    state = server_state(request.app)
    engine = state.engine
    return ModelList(data=[ModelCard(id=state.settings.model_name, root=state.settings.model,
                                     max_model_len=engine.max_model_len if engine else None)])
