"""Models of escalation set-up: a team's on-call roster, a patient's own policy, a skipped dose.

A roster and a policy are documents sent whole; their rules (unique staff refs, shifts naming listed staff,
no double entries; steps in increasing order, repeats ending before the next step) are checked by the
domain, and a break is a 400 naming the field (``rota[2].staff``, ``steps[1].after_minutes``).
"""

from typing import Annotated, Self

from pydantic import Field, StringConstraints

from dispenser_hub.domain.doses import Dose
from dispenser_hub.domain.escalation import Policy, Target, Undeliverable, policy_document
from dispenser_hub.domain.model import PolicyRecord, RosterRecord
from dispenser_hub.domain.rosters import StaffMember, roster_document
from dispenser_hub.web.schemas.common import Email, Input, Name, Phone, Public, Reason, Timestamp

Ref = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")]
"""A staff reference of the roster (``nurse-1``): letters, digits and ``._:/-``."""
HourMinute = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class StaffModel(Input):
    """A person who can be on call, reached by phone (SMS) and/or e-mail."""

    ref: Ref = Field(description="The roster's own reference, used by shifts and named-person steps.")
    name: Name = Field(description="Shown to operators; never sent in a notification.")
    phone: Phone | None = None
    email: Email | None = None


class ShiftModel(Input):
    """Every ``weekday`` from ``start`` (Europe/Oslo wall clock) for ``minutes``."""

    staff: Ref = Field(description="The ``ref`` of a listed staff member.")
    weekday: int = Field(ge=0, le=6, description="0 Monday ... 6 Sunday.")
    start: HourMinute = Field(examples=["22:00"])
    minutes: int = Field(ge=1, le=7 * 24 * 60, examples=[540])


class RosterRequest(Input):
    """A team's whole roster: its on-call staff and weekly rota."""

    staff: list[StaffModel] = Field(max_length=200)
    rota: list[ShiftModel] = Field(max_length=200)

    def document(self) -> dict[str, object]:
        """The domain's document shape."""
        return self.model_dump()


class GapPublic(Public):
    """A period nobody is on call."""

    start: Timestamp
    end: Timestamp


class RosterPublic(Public):
    """A team's roster, who is on call now, and the gaps in the coming week."""

    team_id: int
    staff: list[StaffModel]
    rota: list[ShiftModel]
    updated_at: Timestamp
    updated_by: str
    on_call_now: list[str] = Field(description="Refs of the staff on call now, the primary first.")
    gaps_next_week: list[GapPublic] = Field(description="When an escalation would reach nobody on call.")

    @classmethod
    def of(cls, record: RosterRecord, on_call: list[StaffMember], gaps: list[tuple[object, object]]) -> Self:
        """From the stored record and its coverage."""
        document = roster_document(record.roster)
        return cls.model_validate(
            {
                **document,
                "team_id": record.team_id,
                "updated_at": record.updated_at,
                "updated_by": record.updated_by,
                "on_call_now": [member.ref for member in on_call],
                "gaps_next_week": [{"start": start, "end": end} for start, end in gaps],
            }
        )


class StepModel(Input):
    """Notify ``target`` ``after_minutes`` after the alarm, then ``repeats`` more times."""

    after_minutes: float = Field(ge=0, le=1440)
    target: Target
    person: Ref | None = Field(None, description="The staff ref, for a named_person step only.")
    repeat_every_minutes: float | None = Field(None, ge=5, le=1440)
    repeats: int = Field(0, ge=0, le=10)


class PolicyRequest(Input):
    """A patient's own escalation ladder (at most 8 steps)."""

    name: Name
    steps: list[StepModel] = Field(min_length=1, max_length=8)

    def document(self) -> dict[str, object]:
        """The domain's document shape (targets as their values)."""
        return self.model_dump(mode="json")


class PolicyPublic(Public):
    """The policy in force for a patient's alarms, whether it is their own, and what it cannot deliver."""

    patient_id: int
    own: bool = Field(description="False: the default of the patient's responsibility level.")
    name: str
    steps: list[StepModel]
    updated_at: Timestamp | None
    updated_by: str | None
    warnings: list[str] = Field(description="Steps the patient's records cannot deliver, and why.")

    @classmethod
    def of(
        cls, patient_id: int, policy: Policy, record: PolicyRecord | None, warnings: list[Undeliverable]
    ) -> Self:
        """From the policy in force."""
        return cls.model_validate(
            {
                **policy_document(policy),
                "patient_id": patient_id,
                "own": record is not None,
                "updated_at": None if record is None else record.updated_at,
                "updated_by": None if record is None else record.updated_by,
                "warnings": [f"steps[{w.index}] ({w.target.value}): {w.reason}" for w in warnings],
            }
        )


class SkipRequest(Input):
    """Why staff skip the dose (kept in the record and the audit trail; no patient data)."""

    reason: Reason


class DosePublic(Public):
    """A dose and its outcome."""

    device_id: str
    slot_id: str
    patient_id: int
    due: Timestamp
    state: str
    reason: str | None
    skipped_by: str | None
    outcome_at: Timestamp | None

    @classmethod
    def of(cls, dose: Dose) -> Self:
        """From the domain record."""
        return cls(
            device_id=dose.device_id,
            slot_id=dose.slot_id,
            patient_id=dose.patient_id,
            due=dose.due,
            state=dose.state.value,
            reason=dose.reason,
            skipped_by=dose.skipped_by,
            outcome_at=dose.outcome_at,
        )
