"""The ``console`` channel: the operator console shows the outbox's sent console notifications."""

from __future__ import annotations

from dispenser_hub.ports import Delivery


class ConsoleChannel:
    """``NotificationChannel`` ``console``: the operator console shows ``SENT`` console notifications.

    Nothing leaves the hub: the row in the outbox is the message, and marking it sent is what makes the
    console and the API show it. So a delivery always succeeds.
    """

    name = "console"

    def send(self, address: str, subject: str, text: str, *, key: str) -> Delivery:  # noqa: ARG002
        """Accept the notification (it is stored already; see the class docstring)."""
        return Delivery(ok=True, detail="stored for the console")
