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
    context = engine.max_model_len if engine else None
    # Every served name (aliases included), the primary one first, as vLLM lists them.
    return ModelList(data=[ModelCard(id=name, root=state.settings.model, max_model_len=context)
                           for name in state.settings.served_names])
