"""``/teams``: home-care teams (districts) that receive escalations for their patients."""

from fastapi import status

from dispenser_hub.web.deps import Ctx, Operator
from dispenser_hub.web.errors import error_responses
from dispenser_hub.web.routes.common import operator_router
from dispenser_hub.web.schemas.people import TeamCreate, TeamList, TeamPublic

router = operator_router("teams")


@router.post(
    "/teams",
    status_code=status.HTTP_201_CREATED,
    summary="Register a home-care team",
    response_description="The team as stored.",
    description="Adds a team (district). Names are unique. Audited as `team.create`.",
    responses=error_responses(409, 422),
)
def create_team(team: TeamCreate, api: Ctx, by: Operator) -> TeamPublic:
    """Register a team."""
    return TeamPublic.of(api.registry.add_team(team.record(), by=by))


@router.get(
    "/teams",
    summary="List home-care teams",
    response_description="Every team.",
    description="Every team, by id.",
)
def list_teams(api: Ctx) -> TeamList:
    """Every team."""
    with api.uow_factory() as uow:
        teams = uow.teams.select()
    return TeamList(items=[TeamPublic.of(team) for team in teams])
