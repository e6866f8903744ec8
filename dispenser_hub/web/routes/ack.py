"""``/ack/{token}``: the one-time acknowledgement link of an e-mail or webhook notification.

For the person who got the notification, not operators: no API token, the signed link is the credential
(``services.ack`` has the rules). ``GET`` shows what the link acknowledges and a button; only ``POST``
acts, because mail scanners and link previews open links. The pages are in Norwegian bokmål and English
and say the alarm kind and dispenser id only, never patient data. Not part of the API's OpenAPI document.
"""

from html import escape
from typing import Final

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from dispenser_hub.domain.model import Alarm
from dispenser_hub.domain.notices import MAX_TOKEN, describe
from dispenser_hub.services.ack import LinkOutcome, LinkResult, acknowledge_by_link, link_target
from dispenser_hub.web.deps import Ctx

router = APIRouter(include_in_schema=False)

_TEXTS: Final[dict[LinkOutcome, tuple[int, str, str]]] = {
    LinkOutcome.READY: (200, "Kvitter alarmen?", "Acknowledge the alarm?"),
    LinkOutcome.ACKNOWLEDGED: (200, "Alarmen er kvittert. Takk.", "The alarm is acknowledged. Thank you."),
    LinkOutcome.ALREADY: (
        200,
        "Alarmen var allerede kvittert eller løst.",
        "The alarm was already acknowledged or resolved.",
    ),
    LinkOutcome.USED: (410, "Denne lenken er allerede brukt.", "This link has been used already."),
    LinkOutcome.INVALID: (
        404,
        "Lenken er ugyldig eller utløpt. Kvitter i konsollet eller ring responssenteret.",
        "The link is invalid or has expired. Acknowledge in the console or call the response centre.",
    ),
}


def _page(result: LinkResult, token: str) -> HTMLResponse:
    status, norwegian, english = _TEXTS[result.outcome]
    about = _about(result.alarm) if result.alarm is not None else ""
    button = (
        f'<form method="post" action="/ack/{escape(token)}">'
        '<button type="submit">Kvitter / Acknowledge</button></form>'
        if result.outcome is LinkOutcome.READY
        else ""
    )
    body = (
        '<!doctype html><html lang="nb"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Dispenser-alarm</title></head><body>"
        f'<h1>{escape(norwegian)}</h1><p lang="en">{escape(english)}</p>{about}{button}</body></html>'
    )
    return HTMLResponse(body, status_code=status, headers={"Referrer-Policy": "no-referrer"})


def _about(alarm: Alarm) -> str:
    norwegian = describe(alarm.kind, alarm.vkp_code, alarm.severity, language="nb")
    english = describe(alarm.kind, alarm.vkp_code, alarm.severity, language="en")
    device = escape(alarm.device_id or "-")
    return (
        f'<p id="alarm">{escape(norwegian)} &middot; dispenser {device}</p><p lang="en">{escape(english)}</p>'
    )


def _secret(api: Ctx) -> bytes | None:
    return api.notice_secret


@router.get("/ack/{token}", response_class=HTMLResponse)
async def show_link(token: str, api: Ctx) -> HTMLResponse:
    """What the link acknowledges, with a button (changes nothing)."""
    secret = _secret(api)
    if secret is None or len(token) > MAX_TOKEN:
        return _page(LinkResult(LinkOutcome.INVALID), token)
    result = await run_in_threadpool(link_target, api.uow_factory, secret, token, api.clock.now())
    return _page(result, token)


@router.post("/ack/{token}", response_class=HTMLResponse)
async def use_link(token: str, api: Ctx) -> HTMLResponse:
    """Spend the link: acknowledge its alarm."""
    secret = _secret(api)
    if secret is None or len(token) > MAX_TOKEN:
        return _page(LinkResult(LinkOutcome.INVALID), token)
    result = await run_in_threadpool(
        acknowledge_by_link, api.uow_factory, api.registry, secret, token, api.clock.now()
    )
    return _page(result, token)
