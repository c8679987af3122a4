"""FastAPI dependencies, in one place (the "bigger applications" layout)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from node.app import NodeState

__all__ = ["NowDep", "SessionDep", "StateDep"]


def get_state(request: Request) -> NodeState:
    state: NodeState = request.app.state.node
    return state


def get_session(state: Annotated[NodeState, Depends(get_state)]) -> Iterator[Session]:
    with Session(state.engine) as session:
        yield session


def get_now(state: Annotated[NodeState, Depends(get_state)]) -> int:
    return int(state.extra["now"]())


StateDep = Annotated[NodeState, Depends(get_state)]
SessionDep = Annotated[Session, Depends(get_session)]
NowDep = Annotated[int, Depends(get_now)]
