"""Acknowledging an alarm by replying to its SMS ("OK 4KX9PQ").

Rules:

- The reply's code (``notices.parse_reply``) must be the reply code of a step of an **open** alarm
  (active or acknowledged) that sent an SMS to the number the reply came **from**: both must match, so a
  code alone (guessed, or forwarded from another phone) acknowledges nothing. Codes are compared in
  constant time (``notices.reply_matches``).
- A match acknowledges the alarm through ``Registry.acknowledge_alarm`` (audited, the escalation chain
  stops) as ``sms:<recipient>`` (``sms:contact:7``) with the note "by SMS reply". An alarm acknowledged
  already is answered as it is (a repeated reply changes nothing).
- Nothing matching answers ``None``, never which part failed (number, code or alarm).
- Phone numbers are compared without spaces, hyphens and brackets (the stored number may be written
  ``+47 912 34 567``, the gateway sends ``+4791234567``).
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import TYPE_CHECKING, Final

from dispenser_hub.domain.model import AlarmStatus
from dispenser_hub.domain.notices import parse_reply, reply_matches
from dispenser_hub.services.registry import Conflict, NotFound

if TYPE_CHECKING:
    from dispenser_hub.domain.model import Alarm, Notification
    from dispenser_hub.ports import UnitOfWorkFactory
    from dispenser_hub.services.registry import Registry
    from dispenser_hub.settings import Settings

_log = logging.getLogger(__name__)
PAGE: Final = 200
"""Open alarms read per page while looking for the reply's alarm."""
SMS: Final = "sms"
NOTE: Final = "by SMS reply"
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
                        and notification.step_key is not None
                        and _number(notification.address) == number
                        and reply_matches(secret, alarm.id, notification.step_key, text)
                    ):
                        return alarm, notification
            if len(alarms) < PAGE:
                return None
            offset += PAGE
