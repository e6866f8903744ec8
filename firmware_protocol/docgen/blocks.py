"""Content of PROTOCOL.md's generated blocks: topics, message field tables, errors, codes, limits, signing."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from firmware_protocol import canonical, codec, codes, errors, receiver
from firmware_protocol.canonical import MAX_DEPTH, MAX_PAYLOAD_BYTES, MAX_SAFE_INT
from firmware_protocol.codec import MAX_AGE_MS, MAX_SKEW_MS, SKEW_EXEMPT
from firmware_protocol.docgen.common import (
    address,
    attribute_docs,
    bodies_on,
    doc,
    md,
    ordered,
    pretty,
    table,
)
from firmware_protocol.docgen.material import TEST_KEY_WARNING
from firmware_protocol.docgen.schemas import envelope_schema
from firmware_protocol.errors import ERROR_CLASSES, ErrorCode
from firmware_protocol.ids import DEVICE_ID_PATTERN, KEY_ID_PATTERN, MESSAGE_ID_PATTERN, new_ulid
from firmware_protocol.messages import DOWNLINK_BODIES, PROVISIONING_BODIES, UPLINK_BODIES
from firmware_protocol.receiver import SEQUENCE_EXEMPT
from firmware_protocol.topics import PREFIX, Channel, Direction

if TYPE_CHECKING:
    from firmware_protocol.canonical import JsonObject


def topics_block() -> str:
    """The topics table and the subscriptions of hub and device."""
    rows = [
        [
            f"`{address(channel)}`",
            channel.direction.value,
            str(channel.qos),
            "yes" if channel.retain else "no",
            ", ".join(f"`{b.TYPE}`" for b in bodies_on(channel)),
        ]
        for channel in Channel
    ]
    subscriptions = ", ".join(f"`{f}`" for f in (f"{PREFIX}/+/up/#", f"{PREFIX}/+/{Channel.PROV_REQUEST}"))
    return (
        table(["Topic", "Direction", "QoS", "Retain", "Message types"], rows)
        + f"\n\nThe hub subscribes to {subscriptions}; a device subscribes to its own "
        f"`{Channel.CMD}`, `{Channel.CONFIG}` and `{Channel.PROV_RESPONSE}` topics. The Last Will of a "
        f"device is a signed `death` on `{address(Channel.STATE)}` (QoS 1, retained)."
    )


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target: dict[str, Any] = defs[ref.rsplit("/", 1)[-1]]
        return {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _constraints(schema: dict[str, Any]) -> str:
    parts: list[str] = []
    if "const" in schema:
        parts.append(f"always `{json.dumps(schema['const'])}`")
    if "enum" in schema:
        parts.append("one of " + ", ".join(f"`{v}`" for v in schema["enum"]))
    if "pattern" in schema:
        parts.append(f"pattern `{schema['pattern']}`")
    for key, label in (
        ("minimum", "min"),
        ("maximum", "max"),
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minItems", "min items"),
        ("maxItems", "max items"),
    ):
        if key in schema:
            parts.append(f"{label} {schema[key]}")
    return "; ".join(parts)


def _type_name(schema: dict[str, Any]) -> str:
    kind = schema.get("type", "object" if "properties" in schema else "")
    return str(kind)


def _field_rows(schema: dict[str, Any], defs: dict[str, Any], prefix: str = "") -> list[list[str]]:
    rows: list[list[str]] = []
    required = set(schema.get("required", []))
    for name, raw in schema.get("properties", {}).items():
        prop = _resolve(raw, defs)
        nullable = False
        if "anyOf" in prop:
            options = [_resolve(option, defs) for option in prop["anyOf"]]
            non_null = [option for option in options if option.get("type") != "null"]
            nullable = len(non_null) < len(options)
            outer = {k: v for k, v in prop.items() if k != "anyOf"}
            prop = {**non_null[0], **outer} if len(non_null) == 1 else prop
        description = prop.get("description", "")
        path = f"{prefix}{name}"
        needed = "yes" if name in required else ("no (or null)" if nullable else "no")
        kind = _type_name(prop)
        nested: dict[str, Any] | None = None
        path_suffix = ""
        constraint = _constraints(prop)
        if kind == "array":
            items = _resolve(prop.get("items", {}), defs)
            kind = f"array of {_type_name(items)}"
            item_constraints = _constraints(items)
            if item_constraints:
                constraint = "; ".join(c for c in (constraint, f"each: {item_constraints}") if c)
            if "properties" in items:
                nested, path_suffix = items, "[]."
        elif "properties" in prop:
            nested, path_suffix = prop, "."
        rows.append([f"`{path}`", kind, needed, constraint, description])
        if nested is not None:
            rows += _field_rows(nested, defs, f"{path}{path_suffix}")
    return rows


_FIELD_HEADER = ["Field", "Type", "Required", "Constraints", "Description"]


def messages_block(examples: dict[str, JsonObject]) -> str:
    """The envelope's field table, then per message type: channel facts, docstring, fields, example."""
    out: list[str] = []
    envelope = envelope_schema()
    out += [
        "### Envelope",
        "",
        "Every message is this envelope; `body` is the type's body below.",
        "",
        table(_FIELD_HEADER, _field_rows(envelope, envelope.get("$defs", {}))),
    ]
    groups = (
        ("Uplink messages (device to hub)", UPLINK_BODIES),
        ("Downlink messages (hub to device)", DOWNLINK_BODIES),
        ("Provisioning messages", PROVISIONING_BODIES),
    )
    for title, bodies in groups:
        out += ["", f"### {title}"]
        for body_cls in bodies:
            schema = body_cls.model_json_schema()
            channel = body_cls.CHANNEL
            signer = (
                "the key in its CSR"
                if body_cls.TYPE == "prov.request"
                else ("the device key" if channel.direction is Direction.UPLINK else "the hub key")
            )
            facts = [
                (
                    f"{channel.direction.value.title()} on `{address(channel)}` (QoS {channel.qos}, "
                    f"{'retained' if channel.retain else 'not retained'}), signed with {signer}."
                )
            ]
            if body_cls.REQUIRES_CORR_ID:
                facts.append("The envelope must carry `corr_id`.")
            if body_cls.TYPE in SKEW_EXEMPT:
                facts.append("Exempt from the clock-skew check.")
            if body_cls.TYPE in SEQUENCE_EXEMPT:
                facts.append("Exempt from the sequence check.")
            rows = _field_rows(schema, schema.get("$defs", {}))
            out += ["", f"#### {body_cls.TYPE}", "", " ".join(facts), "", md(doc(body_cls)), ""]
            out.append(table(_FIELD_HEADER, rows) if rows else "The body is an empty object: `{}`.")
            out += ["", "```json", pretty(ordered(examples[body_cls.TYPE])), "```"]
    return "\n".join(out)


def errors_block() -> str:
    """The table of error codes, their exception classes and meanings."""
    docs = attribute_docs(errors)
    rows = [
        [f"`{code.value}`", f"`{ERROR_CLASSES[code].__name__}`", docs.get(f"ErrorCode.{code.name}", "")]
        for code in ErrorCode
    ]
    return table(["Code", "Exception", "Meaning"], rows)


def _code_cell(code: str | None, names: dict[str, str]) -> str:
    return f"`{code}` {names.get(code, '')}".strip() if code else ""


def _mapping_row(label: str, mapping: codes.Mapping) -> list[str]:
    return [
        label,
        _code_cell(mapping.vkp, codes.VKP_CODES),
        _code_cell(mapping.scaip, codes.SCAIP_CODES),
        f"{int(mapping.severity)} {mapping.severity.name.lower().replace('_', ' ')}",
        mapping.dispense_category or "",
        _code_cell(mapping.clears, codes.VKP_CODES),
    ]


def codes_block() -> str:
    """The mapping of message types and hub conditions to VKP and SCAIP codes."""
    rows = [_mapping_row(f"`{t}`", m) for t, m in codes.EVENT_MAPPINGS.items()]
    rows.append(["`fault.cleared`", "", "", "0 not reported", "", "the VKP code of the fault it names"])
    rows += [
        [f"`{t}`", "", "", "not an event", "", ""]
        for t in (b.TYPE for b in (*UPLINK_BODIES, *PROVISIONING_BODIES))
        if t in codes.NOT_REPORTABLE and t != "fault.cleared"
    ]
    rows += [_mapping_row(f"hub: `{name}`", m) for name, m in codes.HUB_CONDITIONS.items()]
    docs = attribute_docs(codes)
    return (
        table(["Message type or condition", "VKP", "SCAIP", "Severity", "Dispense category", "Clears"], rows)
        + f"\n\nSCAIP device type `{codes.SCAIP_DEVICE_TYPE}` (pill dispenser). "
        + md(" ".join(docs.get("EVENT_MAPPINGS", "").split()))
        + " "
        + md(" ".join(docs.get("HUB_CONDITIONS", "").split()))
    )


def limits_block() -> str:
    """The table of size, depth, integer, clock and id limits."""
    docs = {**attribute_docs(canonical), **attribute_docs(codec), **attribute_docs(receiver)}
    ids_docs = attribute_docs(sys.modules[new_ulid.__module__])
    member_pattern = canonical.MEMBER_NAME_PATTERN
    rows = [
        ["`MAX_PAYLOAD_BYTES`", f"{MAX_PAYLOAD_BYTES} bytes", docs["MAX_PAYLOAD_BYTES"]],
        ["`MAX_DEPTH`", str(MAX_DEPTH), docs["MAX_DEPTH"]],
        ["`MAX_SAFE_INT`", f"{MAX_SAFE_INT} (2**53 - 1)", docs["MAX_SAFE_INT"]],
        ["`MAX_SKEW_MS`", f"{MAX_SKEW_MS} ms ({MAX_SKEW_MS // 60_000} min)", docs["MAX_SKEW_MS"]],
        ["`MAX_AGE_MS`", f"{MAX_AGE_MS} ms ({MAX_AGE_MS // 86_400_000} days)", docs["MAX_AGE_MS"]],
        ["`SKEW_EXEMPT`", ", ".join(f"`{t}`" for t in sorted(SKEW_EXEMPT)), docs["SKEW_EXEMPT"]],
        ["`SEQUENCE_EXEMPT`", ", ".join(f"`{t}`" for t in sorted(SEQUENCE_EXEMPT)), docs["SEQUENCE_EXEMPT"]],
        [
            "Member names",
            f"`{member_pattern}`",
            "Every member name, at every level, unique within its object.",
        ],
        ["Device id", f"`{DEVICE_ID_PATTERN}`", ids_docs["DEVICE_ID_PATTERN"]],
        ["Message, boot and correlation ids", f"`{MESSAGE_ID_PATTERN}`", ids_docs["MESSAGE_ID_PATTERN"]],
        ["Key id", f"`{KEY_ID_PATTERN}`", ids_docs["KEY_ID_PATTERN"]],
    ]
    return table(["Limit", "Value", "Meaning"], rows)


def _hex_lines(data: bytes, width: int = 32) -> str:
    return "\n".join(data[i : i + width].hex(" ") for i in range(0, len(data), width))


def signing_block(vector: dict[str, Any], keys: dict[str, Any]) -> str:
    """The worked signing example of ``vector``, step by step, with the test ``keys``."""
    canonical_text = vector["canonical"]
    return "\n".join(
        [
            (
                f"Worked example: the `{vector['type']}` vector of `vectors/valid.json`, signed with the "
                f"device test key. **{TEST_KEY_WARNING}**"
            ),
            "",
            table(
                ["Key", "Value"],
                [
                    ["Seed (hex)", f"`{keys['device']['seed_hex']}`"],
                    ["Seed", keys["device"]["seed"]],
                    ["Public key (hex)", f"`{keys['device']['public_key_hex']}`"],
                    ["Public key (base64url)", f"`{keys['device']['public_key_b64url']}`"],
                    ["kid", f"`{keys['device']['kid']}`"],
                ],
            ),
            "",
            "1. The envelope without `sig`:",
            "",
            "```json",
            pretty(ordered(vector["unsigned_envelope"])),
            "```",
            "",
            (
                "2. Its canonical form (RFC 8785: members sorted, no whitespace), "
                f"{len(canonical_text.encode())} "
                "bytes of UTF-8:"
            ),
            "",
            "```text",
            canonical_text,
            "```",
            "",
            "   The same bytes in hex:",
            "",
            "```text",
            _hex_lines(bytes.fromhex(vector["canonical_hex"])),
            "```",
            "",
            "3. Ed25519 signature of those bytes (64 bytes), hex and base64url without padding:",
            "",
            "```text",
            _hex_lines(bytes.fromhex(vector["signature_hex"])),
            vector["signature_b64url"],
            "```",
            "",
            "4. The payload to publish: the envelope with `sig` added, again in canonical form:",
            "",
            "```json",
            vector["payload"],
            "```",
        ]
    )
