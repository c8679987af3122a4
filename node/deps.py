"""FastAPI dependencies, in one place (the "bigger applications" layout)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from node.state import NodeState

__all__ = ["NowDep", "SessionDep", "StateDep"]


# async, so that FastAPI calls them on the event loop: a sync dependency costs a hop to
# the thread pool and back (bench/issue_http.py).
async def get_state(request: Request) -> NodeState:
    state: NodeState = request.app.state.node
    return state


async def get_session(state: Annotated[NodeState, Depends(get_state)]) -> AsyncIterator[Session]:
    """A session for the request, used by sync routes and services in the thread pool.

    Opening one touches no database (the connection is taken at first use), so this
    runs on the event loop. Closing one whose transaction ended (a service that
    committed) touches none either; only a session still holding a connection is
    closed in the thread pool, where its rollback may wait for the database.
    """
    session = Session(state.engine)
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()


async def get_now(state: Annotated[NodeState, Depends(get_state)]) -> int:
    return int(state.now())


StateDep = Annotated[NodeState, Depends(get_state)]
SessionDep = Annotated[Session, Depends(get_session)]
NowDep = Annotated[int, Depends(get_now)]
