"""REST authentication: the credential of a request becomes a Principal with roles.

A request carries ``Authorization: Bearer <API key or OAuth2 JWT>`` or ``X-API-Key: <key>``.
No or an unknown credential is 401 (``WWW-Authenticate: Bearer``); a known caller without
the role is 403. Both are raised before the endpoint's body runs, so nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from closedloop.identity import ADMIN, ANALYST, APPROVER, Principal, authenticate, require

_bearer = HTTPBearer(auto_error=False, description="an API key or an OAuth2 JWT access token")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")


async def current_principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Principal:
    """The authenticated caller (identity.Unauthenticated -> 401 through the app's handler)."""
    credential = bearer.credentials if bearer is not None else api_key
    settings = request.app.state.service.settings
    # Fetching an issuer's keys is blocking I/O: keep it off the event loop.
    principal = await run_in_threadpool(authenticate, credential, settings)
    request.state.principal = principal
    return principal


def needs(role: str) -> Callable[..., Principal]:
    """A dependency giving the caller when it holds ``role`` (identity.Forbidden -> 403 otherwise)."""

    def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        return require(principal, role)

    dependency.__name__ = f"needs_{role}"
    return dependency


Caller = Annotated[Principal, Depends(current_principal)]
Analyst = Annotated[Principal, Depends(needs(ANALYST))]
Approver = Annotated[Principal, Depends(needs(APPROVER))]
Admin = Annotated[Principal, Depends(needs(ADMIN))]
