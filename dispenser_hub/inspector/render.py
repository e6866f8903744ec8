"""Rendering inspections for people (coloured text) and for programs (JSON lines).

Times on the wire are Unix milliseconds; people read them in Europe/Oslo. Printed patient references
(on rolls and pouches) are masked unless the caller asks to show them: the inspector's output may end up
in a log or a bug report.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from dispenser_hub.inspector.analysis import Inspection

OSLO = ZoneInfo("Europe/Oslo")
TIME_FIELDS = frozenset(
    {
        "ts",
        "due",
        "opens",
        "closes",
        "taken_at",
        "closed_at",
        "until",
        "from",
        "expires",
        "now",
        "first_intake",
        "last_intake",
        "intake_time",
        "paused_until",
    }
)
MASKED_FIELDS = frozenset({"printed_patient_ref"})
_COLOURS = {"ok": "32", "error": "31", "dup": "33", "dim": "2", "bold": "1"}


def local_time(ms: int, *, with_date: bool = True) -> str:
    """A Unix-millisecond time as Europe/Oslo wall-clock text."""
    try:
        moment = datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(OSLO)
    except (OverflowError, OSError, ValueError):
        return f"{ms} (out of range)"
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z" if with_date else "%H:%M:%S.%f")[
        : None if with_date else 12
    ]


def mask(value: str) -> str:
    """Keep the first three characters of a reference, hide the rest."""
    return value[:3] + "…" if len(value) > 3 else "…"  # noqa: PLR2004 - three characters identify no one


def _humanise(value: object, *, show_refs: bool, key: str = "") -> object:
    if isinstance(value, dict):
        return {k: _humanise(v, show_refs=show_refs, key=k) for k, v in value.items()}
    if isinstance(value, list):
        return [_humanise(v, show_refs=show_refs, key=key) for v in value]
    if key in TIME_FIELDS and type(value) is int:
        return local_time(value)
    if key in MASKED_FIELDS and isinstance(value, str) and not show_refs:
        return mask(value)
    return value


class TextRenderer:
    """One or more lines of text per inspection."""

    def __init__(self, *, colour: bool, verbose: bool = False, show_refs: bool = False) -> None:
        """``colour``: ANSI colours; ``verbose``: the whole body as JSON; ``show_refs``: unmask references."""
        self.colour = colour
        self.verbose = verbose
        self.show_refs = show_refs

    def _c(self, style: str, text: str) -> str:
        return f"\x1b[{_COLOURS[style]}m{text}\x1b[0m" if self.colour else text

    def render(self, item: Inspection) -> str:
        """Format one inspection."""
        when = local_time(item.received_ms, with_date=False)
        envelope = item.received.envelope if item.received else None
        if item.error is not None:
            where = f" at {item.error.field}" if item.error.field else ""
            head = f"{when} {self._c('error', '✗ ' + item.error.code.value)}{where}  {item.topic}"
            lines = [head, f"    {item.error.detail}"]
            if envelope is not None:
                lines.append(f"    ({envelope.type} from {envelope.device}, seq {envelope.seq})")
            lines.append(self._c("dim", f"    payload ({item.size} bytes): {item.payload_preview}"))
            return "\n".join(lines)
        assert envelope is not None  # noqa: S101 - an inspection without error always has its envelope
        mark = self._c("dup", "↺ duplicate") if item.duplicate else self._c("ok", "✓")
        seq = f"seq {envelope.seq}"
        if item.sequence is not None and item.sequence.status.value not in {"in_order", "exempt"}:
            seq += f" ({item.sequence.status.value}"
            if item.sequence.missing:
                seq += ", missing " + ", ".join(
                    f"{a}-{b}" if a != b else str(a) for a, b in item.sequence.missing
                )
            seq += ")"
        flags = []
        if item.retained:
            flags.append("retained")
        if item.learned_key:
            flags.append(f"learned {item.learned_key}")
        if item.received and item.received.ignored_fields:
            flags.append("ignored newer fields: " + ", ".join(item.received.ignored_fields))
        extra = f"  [{'; '.join(flags)}]" if flags else ""
        head = f"{when} {mark} {self._c('bold', envelope.type)}  {envelope.device}  {seq}{extra}"
        dumped = envelope.body.model_dump(mode="json", by_alias=True, exclude_none=True)
        body = {k: _humanise(v, show_refs=self.show_refs, key=k) for k, v in dumped.items()}
        if self.verbose:
            text = json.dumps(body, ensure_ascii=False, indent=2)
            return head + "\n" + "\n".join("    " + line for line in text.splitlines())
        summary = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in body.items())
        return f"{head}\n    {summary[:400]}" if summary else head


def render_json(item: Inspection, *, show_refs: bool = False) -> str:
    """One JSON line per inspection (machine-readable; references masked unless ``show_refs``)."""
    data = item.as_dict()
    if not show_refs and data["body"] is not None:
        data["body"] = {
            k: mask(v) if k in MASKED_FIELDS and isinstance(v, str) else v for k, v in data["body"].items()
        }
    return json.dumps(data, ensure_ascii=False, sort_keys=True)
