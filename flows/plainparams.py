"""Flow parameters stored without importing FastAPI, when they are plain JSON already.

Why: Prefect 3.9 serialises a flow run's parameters with FastAPI's ``jsonable_encoder``, and
importing FastAPI for it costs ~0.3 s of every command-line run (measured with cProfile: a tenth
of a warm one-file upload). The parameters of mwingest's ad hoc flows are strings, numbers,
booleans, lists and dicts of those, which need no encoder; anything else (a block) still goes
through Prefect's own path; a pydantic model (the batch's settings) is dumped as its JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

F = TypeVar("F")


def _dumped(value: Any) -> Any:
    """A pydantic model (the batch's settings) as the JSON its schema describes."""
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _copy(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def plain_parameters(flow_obj: F) -> F:
    """Give ``flow_obj`` a parameter serialiser that skips FastAPI for plain JSON values."""
    prefect_way: Callable[[dict[str, Any]], dict[str, Any]] = flow_obj.serialize_parameters  # type: ignore[attr-defined]

    def serialize_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
        dumped = {key: _dumped(value) for key, value in parameters.items()}
        if all(_plain(v) for v in dumped.values()):
            return {key: _copy(value) for key, value in dumped.items()}
        return prefect_way(parameters)

    flow_obj.serialize_parameters = serialize_parameters  # type: ignore[attr-defined]
    return flow_obj
