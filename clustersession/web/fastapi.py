"""FastAPI dependencies: a typed session and the cluster's admin API in a route.

``pip install clustersession[fastapi]``; the core never imports this module.

.. code-block:: python

    from clustersession.web.fastapi import ClusterDep, SessionDep

    @app.post("/password")
    async def change_password(session: SessionDep, cluster: ClusterDep) -> dict[str, int]:
        ...
        return {"logged_out": await cluster.invalidate_principal(session["user_id"])}
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ..sessions.session import Session
from .admin import SessionAdmin, admin_of, session_of

SessionDep = Annotated[Session, Depends(session_of)]
"""``request.session`` as the clustersession :class:`Session` (``id``, ``invalidate()`` ...)."""

ClusterDep = Annotated[SessionAdmin, Depends(admin_of)]
"""The node's :class:`SessionAdmin`: look up, list and invalidate sessions cluster-wide."""

__all__ = ["ClusterDep", "SessionDep"]
