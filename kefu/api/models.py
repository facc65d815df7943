"""``/v1/models``: the model list of the OpenAI-compatible facade.

OpenAI SDKs and tools (LangChain, LibreChat, …) list the models first and pick one from the answer. Any model name
reaches the bot (kefu/api/completions.py), so the list names the configured model and ``kefu``, the name the
README's examples use.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel

from kefu.api.deps import AuthDep, TurnApi, TurnApiDep
from kefu.errors import Forbidden, NotFound
from kefu.identity import Authenticator

# Included by the facade's router (kefu/api/completions.py), under its /v1 prefix.
router = APIRouter(tags=["openai-compatible"])
BOT_MODEL = "kefu"


class ModelOut(BaseModel):
    """One model, in the OpenAI ``model`` object form."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "kefu"


class ModelList(BaseModel):
    """The OpenAI ``list`` object of ``GET /v1/models``."""

    object: Literal["list"] = "list"
    data: list[ModelOut]


def _names(api: TurnApi) -> list[str]:
    return list(dict.fromkeys([api.default_model, BOT_MODEL]))


def _check_caller(auth: Authenticator, request: Request) -> None:
    """Let in the callers of the facade: a server API key (no acting user needed to list) or an end-user token."""
    try:
        auth.require_server(request.headers.get("authorization"))
    except Forbidden:
        pass  # raised only after the end-user token verified: such callers may use the facade too


@router.get("/models", summary="Models of the OpenAI-compatible facade")
async def list_models(request: Request, auth: AuthDep, api: TurnApiDep) -> ModelList:
    """The configured model and ``kefu``; any of them (or any other name) is answered by the bot."""
    _check_caller(auth, request)
    return ModelList(data=[ModelOut(id=name) for name in _names(api)])


@router.get("/models/{model_id}", summary="One model of the OpenAI-compatible facade")
async def get_model(model_id: str, request: Request, auth: AuthDep, api: TurnApiDep) -> ModelOut:
    """A listed model; 404 ``model_not_found`` otherwise."""
    _check_caller(auth, request)
    if model_id not in _names(api):
        raise NotFound(f"no model {model_id!r}: this server lists {', '.join(_names(api))}", code="model_not_found")
    return ModelOut(id=model_id)
