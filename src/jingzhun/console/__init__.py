"""The web console: server-rendered pages over a workspace, for the HTTP API to mount.

``console_router(workspace, principal)`` gives a FastAPI ``APIRouter`` serving everything under
``/console``: overview KPIs, customer search and the 360° view, the segment builder with live
counts and explanations, campaign plans with approval and launch, and model reports. Personal
data is masked and small counts are shown as ``<k`` for principals without ``pii:read``.
"""

from jingzhun.console._router import console_router

__all__ = ["console_router"]
