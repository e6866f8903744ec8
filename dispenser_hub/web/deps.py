"""Dependencies of the routes: the API context, the operator behind the token, paging.

Authentication: ``Authorization: Bearer <token>``, looked up in constant time (``web.tokens``). The token's
name is the operator: the ``by`` of every action and the actor of its audit entry.
"""

from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dispenser_hub.web.context import ApiContext
from dispenser_hub.web.errors import ApiError
from dispenser_hub.web.schemas.common import DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET

T = TypeVar("T")

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="operatorToken",
    description="An operator API token (DISPENSER_API_TOKENS); its name is recorded as the actor.",
)


def context(request: Request) -> ApiContext:
    """The ``ApiContext`` the app was created with."""
    api = request.app.state.api
    if not isinstance(api, ApiContext):  # pragma: no cover - create_app always sets it
        raise TypeError("the app was not created by dispenser_hub.web.create_app")
    return api


Ctx = Annotated[ApiContext, Depends(context)]


def operator(api: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]) -> str:
    """The operator name of the request's bearer token; 401 without a valid one."""
    if credentials is None:
        raise ApiError(
            401,
            "send an API token: Authorization: Bearer <token>",
            headers={"WWW-Authenticate": 'Bearer realm="dispenser-hub"'},
        )
    name = api.token_table.operator(credentials.credentials)
    if name is None:
        raise ApiError(
            401,
            "the API token is not valid",
            headers={"WWW-Authenticate": 'Bearer realm="dispenser-hub", error="invalid_token"'},
        )
    return name


Operator = Annotated[str, Depends(operator)]
"""The operator name behind the request's token (the actor of what the request does)."""


@dataclass(frozen=True, slots=True)
class Paging:
    """Which page of a list to answer."""

    offset: int
    limit: int

    @property
    def fetch(self) -> int:
        """Rows to read: one more than a page, to tell whether another page follows."""
        return self.limit + 1

    def cut(self, rows: list[T]) -> tuple[list[T], int | None]:
        """The page's rows and the next page's offset (``None`` on the last page)."""
        if len(rows) > self.limit:
            return rows[: self.limit], self.offset + self.limit
        return rows, None


def paging(
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Most items to answer.")] = DEFAULT_LIMIT,
) -> Paging:
    """Paging from the query (``offset``, ``limit``), bounded."""
    return Paging(offset, limit)


PageQuery = Annotated[Paging, Depends(paging)]
