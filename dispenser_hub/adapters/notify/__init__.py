"""Notification channels (``ports.NotificationChannel``): SMS over an HTTP gateway, e-mail, signed webhooks.

Every adapter follows the port's rules: ``send`` never raises for a failed delivery; the ``Delivery`` says
whether trying again may help (``retry``: timeouts, connection errors, HTTP 5xx and 429, SMTP 4xx) or not
(other HTTP 4xx, SMTP 5xx, an address of the wrong shape, a refused login); its ``detail`` names the kind of
failure (status code, exception class) and never carries the message text, the address or a server's reply
text (which may echo the address). The texts are rendered by ``dispenser_hub.domain.notices``.
"""

from dispenser_hub.adapters.notify.email import SmtpMailer
from dispenser_hub.adapters.notify.sms import HttpSmsGateway
from dispenser_hub.adapters.notify.webhook import WebhookSender

__all__ = ["HttpSmsGateway", "SmtpMailer", "WebhookSender"]
