"""Acknowledging an alarm from a notification: by replying to its SMS ("OK 4KX9PQ") or by its one-time link.

Rules of SMS replies:

- The reply's code (``notices.parse_reply``) must be the reply code of a step of an **open** alarm
  (active or acknowledged) that sent an SMS to the number the reply came **from**: both must match, so a
  code alone (guessed, or forwarded from another phone) acknowledges nothing. Codes are compared in
  constant time (``notices.reply_matches``).
- A match acknowledges the alarm through ``Registry.acknowledge_alarm`` (audited, the escalation chain
  stops) as ``sms:<recipient>`` (``sms:contact:7``) with the note "by SMS reply". An alarm acknowledged
  already is answered as it is (a repeated reply changes nothing).
- Nothing matching answers ``None``, never which part failed (number, code or alarm). A code of an earlier
  chain of a missed-dose alarm that became active again (a new missed dose) is spent and matches nothing.
- Phone numbers are compared without spaces, hyphens and brackets (the stored number may be written
  ``+47 912 34 567``, the gateway sends ``+4791234567``).

Rules of links (``link_target``, ``acknowledge_by_link``; e-mails and webhooks carry them):

- The token (``notices.check_token``) must be well formed, signed with the notice secret and unexpired, and
  name a notification the hub sent (alarm, step and recipient of an e-mail or webhook row).
- **One time**: the first use marks that notification ``acknowledged_at``; a second use of the link is
  refused as used, whatever the alarm's state.
- The alarm is acknowledged as ``link:<recipient>`` (``link:staff:3:nurse-1``) with the note "by link";
  an alarm acknowledged or resolved meanwhile is reported as such (the link is spent all the same).
- Looking at the link (``link_target``) changes nothing: mail scanners open links, so only a POST acts.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from dispenser_hub.domain.model import AlarmStatus
from dispenser_hub.domain.notices import TokenError, check_token, parse_reply, reply_matches
from dispenser_hub.services.registry import Conflict, NotFound
from dispenser_hub.services.routing import EMAIL, SMS, WEBHOOK

if TYPE_CHECKING:
    from datetime import datetime

    from dispenser_hub.domain.model import Alarm, Notification
    from dispenser_hub.ports import UnitOfWorkFactory
    from dispenser_hub.services.registry import Registry
    from dispenser_hub.settings import Settings

_log = logging.getLogger(__name__)
PAGE: Final = 200
"""Open alarms read per page while looking for the reply's alarm."""
NOTE: Final = "by SMS reply"
LINK_NOTE: Final = "by link"
LINK_CHANNELS: Final = frozenset({EMAIL, WEBHOOK})
_SEPARATORS: Final = re.compile(r"[\s().-]+")


def notice_secret(settings: Settings) -> bytes:
    """The secret of reply codes: derived from the lookup key (``Escalations`` and replies use the same)."""
    return hashlib.sha256(
        b"dispenser-hub notices\0" + settings.lookup_key.get_secret_value().encode()
    ).digest()


def _number(text: str) -> str:
    return _SEPARATORS.sub("", text)


def acknowledge_by_reply(
    uow_factory: UnitOfWorkFactory, registry: Registry, secret: bytes, *, from_number: str, text: str
) -> Alarm | None:
    """The alarm the reply ``text`` from ``from_number`` acknowledges (the module rules), or ``None``."""
    if parse_reply(text) is None or not _number(from_number):
        return None
    match = _find(uow_factory, secret, _number(from_number), text)
    if match is None:
        return None
    alarm, notification = match
    if alarm.status is not AlarmStatus.ACTIVE or alarm.id is None:
        return alarm  # acknowledged already: a repeated reply changes nothing
    try:
        acknowledged = registry.acknowledge_alarm(alarm.id, by=f"sms:{notification.recipient}", note=NOTE)
    except (Conflict, NotFound):  # acknowledged or resolved meanwhile
        with uow_factory() as uow:
            current = uow.alarms.get(alarm.id)
        return current if current is not None and current.status is AlarmStatus.ACKNOWLEDGED else None
    _log.info("alarm %s acknowledged by SMS reply", alarm.id)
    return acknowledged


def _find(
    uow_factory: UnitOfWorkFactory, secret: bytes, number: str, text: str
) -> tuple[Alarm, Notification] | None:
    """The open alarm and its SMS notification to ``number`` whose step code the reply carries."""
    with uow_factory() as uow:
        offset = 0
        while True:
            alarms = uow.alarms.select(open_only=True, offset=offset, limit=PAGE)
            for alarm in alarms:
                if alarm.id is None:  # pragma: no cover - stored alarms have ids
                    continue
                for notification in uow.notifications.for_alarm(alarm.id):
                    if (
                        notification.channel == SMS
                        and notification.acknowledged_at is None  # spent: an earlier chain's code
                        and notification.step_key is not None
                        and _number(notification.address) == number
                        and reply_matches(secret, alarm.id, notification.step_key, text)
                    ):
                        return alarm, notification
            if len(alarms) < PAGE:
                return None
            offset += PAGE


class LinkOutcome(enum.StrEnum):
    """What a link did, or why not (said to the person who opened it)."""

    READY = "ready"
    """Valid and unused: the page offers to acknowledge."""
    ACKNOWLEDGED = "acknowledged"
    ALREADY = "already"
    """The alarm was acknowledged or resolved before (by someone else, or in the console)."""
    USED = "used"
    INVALID = "invalid"
    """Malformed, wrongly signed, expired, or naming nothing the hub sent."""


@dataclass(frozen=True, slots=True)
class LinkResult:
    """The outcome, and the alarm it is about (``None`` for an invalid link)."""

    outcome: LinkOutcome
    alarm: Alarm | None = None


def link_target(uow_factory: UnitOfWorkFactory, secret: bytes, token: str, now: datetime) -> LinkResult:
    """What the link would acknowledge, without acting (see the module rules)."""
    found = _link_row(uow_factory, secret, token, now)
    if found is None:
        return LinkResult(LinkOutcome.INVALID)
    alarm, notification = found
    if notification.acknowledged_at is not None:
        return LinkResult(LinkOutcome.USED, alarm)
    if alarm.status is not AlarmStatus.ACTIVE:
        return LinkResult(LinkOutcome.ALREADY, alarm)
    return LinkResult(LinkOutcome.READY, alarm)


def acknowledge_by_link(
    uow_factory: UnitOfWorkFactory, registry: Registry, secret: bytes, token: str, now: datetime
) -> LinkResult:
    """Spend the link and acknowledge its alarm (see the module rules)."""
    found = _link_row(uow_factory, secret, token, now)
    if found is None:
        return LinkResult(LinkOutcome.INVALID)
    alarm, notification = found
    with uow_factory() as uow:
        current = uow.notifications.by_key(notification.key)
        if current is None or current.acknowledged_at is not None:
            return LinkResult(LinkOutcome.USED, alarm)
        uow.notifications.update(dataclasses.replace(current, acknowledged_at=now))
        uow.commit()
    if alarm.status is not AlarmStatus.ACTIVE or alarm.id is None:
        return LinkResult(LinkOutcome.ALREADY, alarm)
    try:
        acknowledged = registry.acknowledge_alarm(
            alarm.id, by=f"link:{notification.recipient}", note=LINK_NOTE
        )
    except (Conflict, NotFound):  # acknowledged or resolved meanwhile
        return LinkResult(LinkOutcome.ALREADY, alarm)
    _log.info("alarm %s acknowledged by link", alarm.id)
    return LinkResult(LinkOutcome.ACKNOWLEDGED, acknowledged)


def _link_row(
    uow_factory: UnitOfWorkFactory, secret: bytes, token: str, now: datetime
) -> tuple[Alarm, Notification] | None:
    try:
        claims = check_token(secret, token, now=now)
    except TokenError:
        return None
    with uow_factory() as uow:
        alarm = uow.alarms.get(claims.alarm_id)
        if alarm is None:
            return None
        for notification in uow.notifications.for_alarm(claims.alarm_id):
            if (
                notification.channel in LINK_CHANNELS
                and notification.step_key == claims.step_key
                and notification.recipient == claims.recipient_ref
            ):
                return alarm, notification
    return None
