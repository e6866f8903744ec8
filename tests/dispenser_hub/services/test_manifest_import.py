"""Roll manifest import: both formats, every refusal with its place and fix, limits, and fuzzing.

The formats are documented in docs/roll-manifest-format.md; its examples (docs/examples/) are read here, and
its error listing is checked against what the parser says about tests/.../data/manifests/errors.*.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispenser_hub.domain.pouches import RollManifest
from dispenser_hub.services import manifest_import
from dispenser_hub.services.manifest_import import (
    MAX_BYTES,
    MAX_DRUG_LINES,
    MAX_POUCHES,
    MAX_PROBLEMS,
    ManifestFormat,
    ManifestImportError,
    Problem,
    detect_format,
    parse_csv_manifests,
    parse_json_manifests,
    parse_manifests,
)

DATA = Path(__file__).parent / "data" / "manifests"
DOCS = Path(__file__).parents[3] / "docs"
NID_A = "15838510075"  # synthetic test numbers (month + 80): never a real person
NID_B = "12857010025"
NID_BAD = "15838510076"  # second check digit wrong
COLUMNS = (
    "roll_id",
    "patient_national_id",
    "printed_patient_ref",
    "pharmacy",
    "packed_at",
    "pouch_id",
    "intake_at",
    "drug_name",
    "strength",
    "quantity",
    "as_needed",
)
DROP = object()
"""A field value that removes the field."""


# --- builders ------------------------------------------------------------------------------------


def _apply(base: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    merged = {**base, **fields}
    return {name: value for name, value in merged.items() if value is not DROP}


def drug(**fields: Any) -> dict[str, Any]:
    return _apply({"name": "Metformin", "strength": "500 mg", "quantity": 1}, fields)


def pouch(pouch_id: str = "P-1", intake_at: str = "2026-11-23T08:00", **fields: Any) -> dict[str, Any]:
    return _apply({"pouch_id": pouch_id, "intake_at": intake_at, "drugs": [drug()]}, fields)


def manifest(**fields: Any) -> dict[str, Any]:
    base = {
        "roll_id": "R-1",
        "patient_national_id": NID_A,
        "printed_patient_ref": "PX-1",
        "pharmacy": "Apotek 1 Bergen",
        "packed_at": "2026-11-20T14:00+01:00",
        "pouches": [pouch("P-1", "2026-11-23T08:00"), pouch("P-2", "2026-11-23T20:00")],
    }
    return _apply(base, fields)


def document(**fields: Any) -> dict[str, Any]:
    return {"format": "dispenser-hub/roll-manifest", "version": 1, **manifest(**fields)}


def encode(doc: object) -> bytes:
    return json.dumps(doc, indent=2, ensure_ascii=False).encode()


def row(**fields: str) -> dict[str, str]:
    base = {
        "roll_id": "R-1",
        "patient_national_id": NID_A,
        "printed_patient_ref": "PX-1",
        "pharmacy": "Apotek 1 Bergen",
        "packed_at": "2026-11-20T14:00+01:00",
        "pouch_id": "P-1",
        "intake_at": "2026-11-23 08:00",
        "drug_name": "Metformin",
        "strength": "500 mg",
        "quantity": "1",
        "as_needed": "",
    }
    return {**base, **fields}


def default_rows() -> list[dict[str, str]]:
    return [
        row(),
        row(drug_name="Ramipril", strength="5 mg", quantity="0,5"),
        row(pouch_id="P-2", intake_at="2026-11-23 20:00"),
    ]


def csv_bytes(
    rows: list[dict[str, str]] | None = None,
    *,
    delimiter: str = ";",
    columns: tuple[str, ...] = COLUMNS,
    bom: bool = False,
) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(columns)
    for values in default_rows() if rows is None else rows:
        writer.writerow([values.get(name, "") for name in columns])
    return ("\ufeff" if bom else "").encode() + out.getvalue().encode()


def refusal(data: bytes, filename: str, content_type: str | None = None) -> ManifestImportError:
    with pytest.raises(ManifestImportError) as caught:
        parse_manifests(data, filename=filename, content_type=content_type)
    return caught.value


def only_problem(error: ManifestImportError) -> Problem:
    assert len(error.problems) == 1, error.format()
    return error.problems[0]


def line_of(data: bytes, needle: str, occurrence: int = 0) -> int:
    text = data.decode()
    offset = -1
    for _ in range(occurrence + 1):
        offset = text.index(needle, offset + 1)
    return text.count("\n", 0, offset) + 1


def utc(*fields: int) -> datetime:
    """``utc(2026, 11, 23, 7)``: year, month, day and optionally hour, minute, second, microsecond."""
    year, month, day, hour, minute, second, micro = (*fields, 0, 0, 0, 0)[:7]
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


# --- valid files ---------------------------------------------------------------------------------


def test_the_documented_examples_are_the_same_roll_in_both_formats() -> None:
    from_json = parse_manifests((DOCS / "examples/roll-manifest.json").read_bytes(), filename="x.json")
    from_csv = parse_manifests((DOCS / "examples/roll-manifest.csv").read_bytes(), filename="x.csv")
    assert from_json == from_csv
    assert from_json[0].content_digest() == from_csv[0].content_digest()
    roll = from_json[0]
    assert (roll.roll_id, roll.patient_national_id, roll.printed_patient_ref) == (
        "R-2026-000123",
        NID_A,
        "PX-4471",
    )
    assert roll.packed_at == utc(2026, 11, 20, 13, 5)
    assert [p.intake_at for p in roll.pouches] == [
        utc(2026, 11, 23, 7),
        utc(2026, 11, 23, 13),
        utc(2026, 11, 23, 19),
        utc(2026, 11, 24, 7),
    ]
    assert [(d.name, d.quantity, d.as_needed) for d in roll.pouches[0].drugs] == [
        ("Metformin", Decimal(1), False),
        ("Ramipril", Decimal("0.5"), False),
    ]
    assert roll.pouches[1].drugs[0].as_needed


def test_two_rolls_in_json_and_csv_have_equal_digests() -> None:
    """JSON with offsets, a list of manifests and escapes; CSV with a BOM, CRLF, commas, local times."""
    from_json = parse_json_manifests((DATA / "two-rolls.json").read_bytes())
    from_csv = parse_csv_manifests((DATA / "two-rolls.csv").read_bytes())
    assert [m.roll_id for m in from_json] == ["R-2026-000200", "R-2026-000201"]
    assert [m.content_digest() for m in from_json] == [m.content_digest() for m in from_csv]
    assert from_json[0].pharmacy == "Vitusapotek Bodø"
    assert from_json[0].packed_at == utc(2026, 6, 29, 9, 30, 0, 250_000)
    # Across the autumn change: 02:30 summer time, then 02:30 winter time, an hour later.
    times = [p.intake_at for p in from_json[1].pouches]
    assert times[1:3] == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)]
    assert times[3] == utc(2026, 10, 25, 7)  # 08:00 winter time


def test_semicolon_and_comma_files_read_alike() -> None:
    semicolons = parse_csv_manifests(csv_bytes(delimiter=";"))
    commas = parse_csv_manifests(csv_bytes(delimiter=","))  # the writer quotes "0,5"
    assert semicolons == commas
    assert semicolons[0].pouches[0].drugs[1].quantity == Decimal("0.5")


def test_bom_and_crlf_are_accepted() -> None:
    plain = parse_csv_manifests(csv_bytes())
    assert parse_csv_manifests(csv_bytes(bom=True)) == plain
    assert parse_csv_manifests(csv_bytes(bom=True).replace(b"\n", b"\r\n")) == plain
    assert parse_json_manifests(b"\xef\xbb\xbf" + encode(document())) == parse_json_manifests(
        encode(document())
    )


def test_json_and_csv_of_the_same_roll_are_equal() -> None:
    doc = document(
        pouches=[
            pouch(drugs=[drug(), drug(name="Ramipril", strength="5 mg", quantity="0.5")]),
            pouch("P-2", "2026-11-23T20:00"),
        ]
    )
    assert parse_json_manifests(encode(doc)) == parse_csv_manifests(csv_bytes())


@pytest.mark.parametrize(
    "written",
    [
        "2026-11-23T08:00",
        "2026-11-23 08:00",
        "2026-11-23t08:00:00",
        "2026-11-23T08:00:00.000",
        "2026-11-23T07:00Z",
        "2026-11-23T07:00:00z",
        "2026-11-23T07:00+00:00",
        "2026-11-23T08:00+01:00",
        "2026-11-23T08:00+0100",
        "2026-11-23T08:00+01",
    ],
)
def test_intake_time_notations(written: str) -> None:
    roll = parse_json_manifests(encode(document(pouches=[pouch(intake_at=written)])))[0]
    assert roll.pouches[0].intake_at == utc(2026, 11, 23, 7)


def test_summer_wall_clock_time_is_summer_time() -> None:
    roll = parse_json_manifests(encode(document(pouches=[pouch(intake_at="2026-07-01T08:00")])))[0]
    assert roll.pouches[0].intake_at == utc(2026, 7, 1, 6)


def test_fall_back_hour_is_accepted_with_an_offset() -> None:
    pouches = [pouch("P-1", "2026-10-25T02:30+02:00"), pouch("P-2", "2026-10-25T02:30+01:00")]
    roll = parse_json_manifests(encode(document(pouches=pouches)))[0]
    assert roll.pouches[1].intake_at - roll.pouches[0].intake_at == timedelta(hours=1)


def test_national_id_with_a_space_after_the_date() -> None:
    roll = parse_json_manifests(encode(document(patient_national_id="158385 10075")))[0]
    assert roll.patient_national_id == NID_A


@pytest.mark.parametrize(
    ("written", "meaning"),
    [
        ("", False),
        ("false", False),
        ("No", False),
        ("nei", False),
        ("0", False),
        ("TRUE", True),
        ("yes", True),
        ("Ja", True),
        ("1", True),
    ],
)
def test_csv_as_needed_values(written: str, meaning: bool) -> None:
    roll = parse_csv_manifests(csv_bytes([row(as_needed=written)]))[0]
    assert roll.pouches[0].drugs[0].as_needed is meaning


def test_csv_without_the_optional_as_needed_column() -> None:
    roll = parse_csv_manifests(csv_bytes([row()], columns=COLUMNS[:-1]))[0]
    assert roll.pouches[0].drugs[0].as_needed is False


def test_csv_header_in_any_order_and_case_with_empty_trailing_columns() -> None:
    columns = tuple(reversed(COLUMNS))
    data = csv_bytes([row()], columns=columns).decode()
    data = data.replace("roll_id", " ROLL_ID ").replace("\n", ";;\n")  # two empty columns everywhere
    assert parse_csv_manifests(data.encode()) == parse_csv_manifests(csv_bytes([row()]))


def test_csv_skips_blank_rows_and_rows_of_separators() -> None:
    text = csv_bytes([row()]).decode() + "\n;;;;;;;;;;\n\n"
    assert parse_csv_manifests(text.encode()) == parse_csv_manifests(csv_bytes([row()]))


def test_csv_roll_fields_may_be_written_differently_with_the_same_meaning() -> None:
    rows = [
        row(),
        row(drug_name="B", packed_at="2026-11-20T13:00:00Z", patient_national_id="158385 10075"),
        row(drug_name="C", intake_at="2026-11-23T07:00Z"),
    ]
    assert len(parse_csv_manifests(csv_bytes(rows))[0].pouches[0].drugs) == 3


def test_several_rolls_in_one_csv() -> None:
    rows = [row(), row(roll_id="R-2", patient_national_id=NID_B, printed_patient_ref="PX-2")]
    rolls = parse_csv_manifests(csv_bytes(rows))
    assert [(m.roll_id, m.patient_national_id) for m in rolls] == [("R-1", NID_A), ("R-2", NID_B)]


def test_manifests_list_in_json() -> None:
    doc = {
        "format": "dispenser-hub/roll-manifest",
        "version": 1,
        "manifests": [manifest(), manifest(roll_id="R-2", patient_national_id=NID_B)],
    }
    rolls = parse_json_manifests(encode(doc))
    assert [m.roll_id for m in rolls] == ["R-1", "R-2"]
    assert all(isinstance(m, RollManifest) for m in rolls)


def test_quantities_are_exact_decimals() -> None:
    drugs = [drug(quantity=0.1), drug(name="B", quantity="0.25"), drug(name="C", quantity=2.0)]
    roll = parse_json_manifests(encode(document(pouches=[pouch(drugs=drugs)])))[0]
    assert [d.quantity for d in roll.pouches[0].drugs] == [Decimal("0.1"), Decimal("0.25"), Decimal("2.0")]


# --- choosing the format -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "content_type", "expected"),
    [
        ("roll.json", None, ManifestFormat.JSON),
        ("ROLL.JSON", None, ManifestFormat.JSON),
        ("roll.csv", None, ManifestFormat.CSV),
        ("C:\\Users\\apotek\\roll.CSV", None, ManifestFormat.CSV),
        ("roll.csv", "application/json; charset=utf-8", ManifestFormat.JSON),
        ("upload", "application/vnd.dispenser+json", ManifestFormat.JSON),
        ("roll.json", "text/csv", ManifestFormat.CSV),
        ("roll.csv", "application/vnd.ms-excel", ManifestFormat.CSV),
        ("roll.json", "application/octet-stream", ManifestFormat.JSON),
    ],
)
def test_format_by_content_type_then_extension(
    filename: str, content_type: str | None, expected: ManifestFormat
) -> None:
    assert detect_format(b"{}", filename=filename, content_type=content_type) is expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xef\xbb\xbf  \n{", ManifestFormat.JSON),
        (b"roll_id;pouch_id\nR-1;P-1", ManifestFormat.CSV),
        (b"\xef\xbb\xbfRoll_ID,pouch_id\n", ManifestFormat.CSV),
        (b"pouch_id;drug_name;quantity\n", ManifestFormat.CSV),
    ],
)
def test_format_by_content_when_the_name_says_nothing(data: bytes, expected: ManifestFormat) -> None:
    assert detect_format(data, filename="upload.txt", content_type="text/plain") is expected


def test_parse_manifests_reads_both_formats() -> None:
    assert parse_manifests(encode(document()), filename="upload") == parse_json_manifests(encode(document()))
    assert parse_manifests(csv_bytes(), filename="upload.txt") == parse_csv_manifests(csv_bytes())


def test_unknown_format_is_refused_with_what_to_do() -> None:
    problem = only_problem(refusal(b"hello world", "upload.dat"))
    assert problem.line is None
    assert "name the file .json or .csv" in problem.message
    assert refusal(b"hello", "upload.dat").format().startswith("upload.dat: cannot tell whether")


def test_other_content_types_are_refused() -> None:
    problem = only_problem(refusal(encode(document()), "roll.json", "image/png"))
    assert "'image/png' is not a roll manifest" in problem.message


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"PK\x03\x04" + bytes(100), "Excel workbook (.xlsx)"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "Excel 97-2003 workbook"),
        (b"%PDF-1.7\n", "PDF"),
        ("roll_id;pouch_id\n".encode("utf-16"), "UTF-16"),
    ],
)
def test_files_that_are_not_manifests_are_named(data: bytes, what: str) -> None:
    for filename in ("roll.csv", "roll.json", "roll"):
        assert what in only_problem(refusal(data, filename)).message


@pytest.mark.parametrize("data", [b"", b"   \n\t", b"\xef\xbb\xbf", b"\xef\xbb\xbf\r\n"])
@pytest.mark.parametrize("filename", ["roll.json", "roll.csv", "roll"])
def test_empty_files(data: bytes, filename: str) -> None:
    assert "the file is empty" in only_problem(refusal(data, filename)).message


def test_empty_file_through_the_format_functions() -> None:
    for parse in (parse_json_manifests, parse_csv_manifests):
        with pytest.raises(ManifestImportError, match="the file is empty"):
            parse(b"\n")


@pytest.mark.parametrize("filename", ["roll.json", "roll.csv"])
def test_binary_garbage(filename: str) -> None:
    data = bytes(range(256)) * 4
    problem = only_problem(refusal(data, filename))
    assert "not UTF-8" in problem.message
    assert "binary" in problem.message


def test_latin1_csv_names_its_line() -> None:
    data = (
        csv_bytes([row(), row(drug_name="Æ")])
        .decode()
        .replace("Æ", "\x00")
        .encode()
        .replace(b"\x00", b"\xc6")
    )
    problem = only_problem(refusal(data, "roll.csv"))
    assert (problem.line, problem.field) == (3, "")
    assert 'not UTF-8 text (byte 0xC6): save the file as UTF-8 ("CSV UTF-8" in Excel)' in problem.message


# --- limits --------------------------------------------------------------------------------------


@pytest.mark.parametrize("filename", ["roll.json", "roll.csv", "roll"])
def test_oversized_files_are_refused_unread(filename: str) -> None:
    data = b"{" + b" " * MAX_BYTES + b"}"
    problem = only_problem(refusal(data, filename))
    assert "at most 5,242,880 bytes (5 MiB)" in problem.message
    with pytest.raises(ManifestImportError, match="split the manifests"):
        parse_json_manifests(data)
    with pytest.raises(ManifestImportError, match="split the manifests"):
        parse_csv_manifests(data)


def _pouches(count: int) -> list[dict[str, Any]]:
    start = datetime(2026, 1, 1, 7, tzinfo=UTC)
    return [
        pouch(f"P-{n}", (start + timedelta(hours=6 * n)).isoformat(), drugs=[drug()]) for n in range(count)
    ]


def test_json_with_more_than_max_pouches_is_refused() -> None:
    pouches = _pouches(MAX_POUCHES + 1)
    doc = {
        "format": "dispenser-hub/roll-manifest",
        "version": 1,
        "manifests": [manifest(pouches=pouches[:5000]), manifest(roll_id="R-2", pouches=pouches[5000:])],
    }
    problem = only_problem(refusal(json.dumps(doc).encode(), "big.json"))
    assert problem.field == "manifests[1].pouches[5000]"
    assert problem.message == "more than 10000 pouches in one file: split the manifests over several files"


def test_csv_with_more_than_max_pouches_is_refused() -> None:
    rows = [row(pouch_id=p["pouch_id"], intake_at=p["intake_at"]) for p in _pouches(MAX_POUCHES + 1)]
    problem = only_problem(refusal(csv_bytes(rows), "big.csv"))
    assert (problem.line, problem.field) == (MAX_POUCHES + 2, "pouch_id")
    assert "more than 10000 pouches" in problem.message


def test_max_pouches_is_allowed() -> None:
    rows = [row(pouch_id=p["pouch_id"], intake_at=p["intake_at"]) for p in _pouches(MAX_POUCHES)]
    assert len(parse_csv_manifests(csv_bytes(rows))[0].pouches) == MAX_POUCHES


def test_more_than_max_drug_lines_in_a_pouch() -> None:
    drugs = [drug(name=f"D{n}") for n in range(MAX_DRUG_LINES + 1)]
    problem = only_problem(refusal(encode(document(pouches=[pouch(drugs=drugs)])), "roll.json"))
    assert problem.field == f"pouches[0].drugs[{MAX_DRUG_LINES}]"
    assert problem.message == (
        "more than 100 drug lines in pouch pouches[0]: check the file (a pouch holds a few drugs)"
    )
    rows = [row(drug_name=f"D{n}") for n in range(MAX_DRUG_LINES + 1)]
    problem = only_problem(refusal(csv_bytes(rows), "roll.csv"))
    assert (problem.line, problem.field) == (MAX_DRUG_LINES + 2, "drug_name")
    assert 'more than 100 drug lines in pouch "P-1"' in problem.message
    assert len(parse_csv_manifests(csv_bytes(rows[:-1]))[0].pouches[0].drugs) == MAX_DRUG_LINES


def test_reporting_stops_at_max_problems() -> None:
    rows = [row(pouch_id=f"P-{n}", intake_at=f"2026-11-23 08:{n % 60:02d}", quantity="x") for n in range(500)]
    error = refusal(csv_bytes(rows), "roll.csv")
    assert error.truncated
    assert len(error.problems) == MAX_PROBLEMS
    assert error.format().splitlines()[-1] == (
        "roll.csv: stopped after 100 problems (there may be more): fix these and import the file again"
    )


def test_deep_nesting_is_refused() -> None:
    data = b'{"format": "dispenser-hub/roll-manifest", "version": 1, "roll_id": ' + b"[" * 100_000
    problem = only_problem(refusal(data, "deep.json"))
    assert problem.message.startswith("not valid JSON: nested too deeply")


def test_nesting_near_the_interpreters_limit_is_only_ever_refused() -> None:
    """The decoder's depth limit is the interpreter's recursion limit, shared with the caller's frames."""
    for depth in range(800, 1101, 3):
        data = (
            '{"format": "dispenser-hub/roll-manifest", "version": 1, "x": '
            + "[" * depth
            + "]" * depth
            + ', "a": 1}'
        ).encode()
        assert _outcome(data, "deep.json") == "refused"


# --- JSON problems -------------------------------------------------------------------------------


def json_refusal(doc: object) -> tuple[ManifestImportError, bytes]:
    data = doc if isinstance(doc, bytes) else encode(doc)
    return refusal(data, "roll.json"), data


def test_bad_national_id_checksum_names_the_digit_never_the_number() -> None:
    error, data = json_refusal(document(patient_national_id=NID_BAD))
    problem = only_problem(error)
    assert problem.field == "patient_national_id"
    assert (problem.line, problem.column) == (line_of(data, NID_BAD), 26)
    assert problem.message == (
        "is not a valid national identity number: second check digit (digit 11) is wrong: "
        "the number is mistyped or made up"
    )
    assert NID_BAD not in error.format()


def test_national_id_as_a_number_asks_for_quotes() -> None:
    error, _ = json_refusal(encode(document()).replace(f'"{NID_A}"'.encode(), NID_A.encode()))
    assert only_problem(error).message == "must be a string, not a number: put the 11 digits in quotes"
    assert NID_A not in error.format()


@pytest.mark.parametrize(
    ("remove", "field"),
    [
        (lambda d: d.pop("roll_id"), "roll_id"),
        (lambda d: d.pop("patient_national_id"), "patient_national_id"),
        (lambda d: d.pop("printed_patient_ref"), "printed_patient_ref"),
        (lambda d: d.pop("pharmacy"), "pharmacy"),
        (lambda d: d.pop("packed_at"), "packed_at"),
        (lambda d: d.pop("pouches"), "pouches"),
        (lambda d: d["pouches"][1].pop("pouch_id"), "pouches[1].pouch_id"),
        (lambda d: d["pouches"][1].pop("intake_at"), "pouches[1].intake_at"),
        (lambda d: d["pouches"][1].pop("drugs"), "pouches[1].drugs"),
        (lambda d: d["pouches"][1]["drugs"][0].pop("name"), "pouches[1].drugs[0].name"),
        (lambda d: d["pouches"][1]["drugs"][0].pop("strength"), "pouches[1].drugs[0].strength"),
        (lambda d: d["pouches"][1]["drugs"][0].pop("quantity"), "pouches[1].drugs[0].quantity"),
        (lambda d: d.pop("format"), "format"),
        (lambda d: d.pop("version"), "version"),
    ],
)
def test_missing_members_are_reported_at_their_object(remove: Any, field: str) -> None:
    doc = document()
    remove(doc)
    error, data = json_refusal(doc)
    problem = only_problem(error)
    assert problem.field == field
    name = field.rsplit(".", 1)[-1]
    assert problem.message.startswith(f'is missing: add "{name}", ')
    assert problem.line is not None
    assert problem.column is not None
    assert data.decode().splitlines()[problem.line - 1][problem.column - 1] == "{"  # the object lacking it


@pytest.mark.parametrize(
    ("change", "field", "hint"),
    [
        (lambda d: d.update(rollid="R-1"), "rollid", 'did you mean "roll_id"?'),
        (lambda d: d["pouches"][0].update(pouchid="x"), "pouches[0].pouchid", 'did you mean "pouch_id"?'),
        (
            lambda d: d["pouches"][0]["drugs"][0].update(as_need=True),
            "pouches[0].drugs[0].as_need",
            '"as_needed"',
        ),
        (
            lambda d: d["pouches"][0]["drugs"][0].update(colour="red"),
            "pouches[0].drugs[0].colour",
            "the members here are name, strength, quantity, as_needed",
        ),
    ],
)
def test_unknown_members_are_refused_with_their_path(change: Any, field: str, hint: str) -> None:
    doc = document()
    change(doc)
    error, data = json_refusal(doc)
    problem = only_problem(error)
    assert problem.field == field
    assert problem.message.startswith("unknown member: remove it (")
    assert hint in problem.message
    name = field.rsplit(".", 1)[-1]
    assert problem.line == line_of(data, f'"{name}"')


def test_a_member_given_twice() -> None:
    data = encode(document()).replace(b'"pharmacy"', b'"pharmacy": "A",\n  "pharmacy"')
    problem = only_problem(json_refusal(data)[0])
    assert problem.field == "pharmacy"
    assert (problem.line, problem.column) == (8, 3)
    assert problem.message == "is given twice (first on line 7): remove one"


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (lambda d: d.update(roll_id=7), "roll_id", "must be a string, not a number"),
        (lambda d: d.update(pharmacy=None), "pharmacy", "must be a string, not null"),
        (lambda d: d.update(packed_at=["2026"]), "packed_at", "must be a string, not a list"),
        (lambda d: d.update(pouches={}), "pouches", "must be a list of pouches [{...}, ...], not an object"),
        (
            lambda d: d["pouches"].append("P-3"),
            "pouches[2]",
            'must be a pouch object {"pouch_id": ..., ...}, not a string',
        ),
        (
            lambda d: d["pouches"][0].update(drugs="Metformin"),
            "pouches[0].drugs",
            "must be a list of drug lines [{...}, ...], not a string",
        ),
        (
            lambda d: d["pouches"][0]["drugs"].append(1),
            "pouches[0].drugs[1]",
            'must be a drug line object {"name": ..., ...}, not a number',
        ),
        (
            lambda d: d["pouches"][0]["drugs"][0].update(quantity=True),
            "pouches[0].drugs[0].quantity",
            'must be a number (1, 0.5) or a decimal string ("0.5"), not true',
        ),
        (
            lambda d: d["pouches"][0]["drugs"][0].update(as_needed="yes"),
            "pouches[0].drugs[0].as_needed",
            "must be true or false, not a string",
        ),
        (
            lambda d: d["pouches"][0]["drugs"][0].update(as_needed=None),
            "pouches[0].drugs[0].as_needed",
            "must be true or false, not null",
        ),
        (
            lambda d: d["pouches"][0].update(intake_at=1795420800000),
            "pouches[0].intake_at",
            "must be a string, not a number",
        ),
    ],
)
def test_wrong_types_are_named(change: Any, field: str, message: str) -> None:
    doc = document()
    change(doc)
    problem = only_problem(json_refusal(doc)[0])
    assert (problem.field, problem.message) == (field, message)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "the document must be an object"),
        ("roll", "the document must be an object"),
        (document(manifests=[]), "either one manifest"),
    ],
)
def test_document_shape(doc: object, message: str) -> None:
    assert message in json_refusal(doc)[0].format()


def test_manifests_list_and_top_level_manifest_together() -> None:
    doc = document(manifests=[manifest()])
    error, _ = json_refusal(doc)
    assert {p.field for p in error.problems} == set(manifest())
    assert all("not both" in p.message for p in error.problems)


def test_empty_lists() -> None:
    doc = {"format": "dispenser-hub/roll-manifest", "version": 1, "manifests": []}
    assert only_problem(json_refusal(doc)[0]).message == "is empty: add at least one manifest"
    problem = only_problem(json_refusal(document(pouches=[]))[0])
    assert (problem.field, problem.message) == ("pouches", "is empty: a roll has at least one pouch")
    problem = only_problem(json_refusal(document(pouches=[pouch(drugs=[])]))[0])
    assert (problem.field, problem.message) == (
        "pouches[0].drugs",
        "is empty: a pouch holds at least one drug line",
    )


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ({"format": "other/format"}, 'is "other/format", not "dispenser-hub/roll-manifest"'),
        ({"format": 1}, 'is a number, not "dispenser-hub/roll-manifest"'),
        ({"version": 2}, "is 2: this hub reads version 1"),
        ({"version": "1"}, "must be the number 1, not a string"),
        ({"version": 1.0}, "is 1.0: this hub reads version 1"),
    ],
)
def test_another_format_or_version_stops_reading(header: dict[str, object], message: str) -> None:
    doc = {**document(roll_id="not a valid id", extra=1), **header}
    problem = only_problem(json_refusal(doc)[0])  # the roll id and the extra member are not reported
    assert message in problem.message


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ('{"a": 1,}', (1, 9), 'a comma before "}": remove the last comma'),
        ('{"a": [1, 2, ]}', (1, 14), 'a comma before "]": remove the last comma'),
        ('{"a": 1\n "b": 2}', (2, 2), 'expected "," between members or list items, or a closing } or ]'),
        ("{'a': 1}", (1, 2), "double quotes, not single quotes"),
        ('// manifest\n{"a": 1}', (1, 1), "JSON has no comments"),
        ('{"national_id": 01019010046}', (1, 17), "a number cannot start with 0"),
        ('{"a": "abc}', (1, 7), "a string that is never closed"),
        ('{"a": "line\nbreak"}', (1, 12), "control character in a string"),
        ('{"a": "\\x"}', (1, 8), "an invalid escape in a string"),
        ('{"a": 1}\n{"a": 2}', (2, 1), "more text after the end of the document"),
        ('{"a": [1, 2', (1, 12), "the file ends too early"),
        ('{"a": True}', (1, 7), "true, false and null in lowercase"),
        ('{"a": 1 :}', (1, 9), 'expected "," between members'),
        ('{"a" 1}', (1, 6), 'expected ":" after the member name'),
        ("{1: 2}", (1, 2), "expected a member name in double quotes"),
        ('{"a": +1}', (1, 7), 'unexpected "+": expected a value'),
    ],
)
def test_json_syntax_errors_name_line_and_column(text: str, position: tuple[int, int], message: str) -> None:
    problem = only_problem(json_refusal(text.encode())[0])
    assert (problem.line, problem.column) == position
    assert problem.message.startswith("not valid JSON: ")
    assert message in problem.message


def test_nan_and_infinity_are_not_json() -> None:
    data = encode(document()).replace(b'"quantity": 1', b'"quantity": NaN', 1)
    problem = only_problem(json_refusal(data)[0])
    assert problem.message == 'must be a number (1, 0.5) or a decimal string ("0.5"), not NaN (not JSON)'


def test_lone_surrogate_escapes_are_refused() -> None:
    data = encode(document()).replace(b'"Metformin"', b'"Metformin \\ud800"', 1)
    problem = only_problem(json_refusal(data)[0])
    assert problem.field == "pouches[0].drugs[0].name"
    assert "lone surrogate" in problem.message


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("roll_id", "R 1", '"R 1" is not a valid roll id: use 1-64 letters, digits and . _ : / -'),
        ("roll_id", "", "is empty: give the roll id printed on the roll"),
        ("roll_id", "x" * 65, "is not a valid roll id"),
        ("printed_patient_ref", "-PX", "is not a valid printed patient reference"),
        ("pharmacy", "  ", "is empty: give the name of the pharmacy that packed the roll"),
        ("pharmacy", "A" * 201, "is 201 characters long: at most 200 are allowed"),
        ("pharmacy", "Apotek\n1", "holds a line break, tab or other control character: remove it"),
        ("patient_national_id", "1583851007", "has 11 digits, this has 10"),
        ("patient_national_id", "15838510075x", "has only digits"),
        ("packed_at", "2026-11-20T14:00", "has no offset: add it, e.g. +01:00 in winter, or Z for UTC"),
        ("packed_at", "2026-11-20", "is not a time: write it like 2026-11-20T14:00+01:00 (year first)"),
        ("packed_at", "2026-02-30T14:00Z", "is not a real date and time: check the numbers"),
        ("packed_at", "2026-11-20T24:00Z", "is not a real date and time"),
        ("packed_at", "2026-11-20T14:00+24:00", "has an impossible offset"),
        ("packed_at", "2026-11-20T14:00:00.1234Z", "is not a time"),
        ("packed_at", "9999-12-31T23:59Z", '"9999-12-31T23:59Z": the year must be 2000-2099; check the date'),
        ("packed_at", "0001-01-01T00:00+01:00", "the year must be 2000-2099"),
    ],
)
def test_roll_field_rules(field: str, value: str, message: str) -> None:
    problem = only_problem(json_refusal(document(**{field: value}))[0])
    assert problem.field == field
    assert message in problem.message


def test_packed_at_may_have_any_offset() -> None:
    roll = parse_json_manifests(encode(document(packed_at="2026-11-20T09:00-05:00")))[0]
    assert roll.packed_at == utc(2026, 11, 20, 14)


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("2027-03-28T02:30", "does not exist in Europe/Oslo: the clocks jump forward an hour that night"),
        ("2027-03-28T02:00", "does not exist in Europe/Oslo"),
        ("2026-03-29 02:59:59", "does not exist in Europe/Oslo"),
        (
            "2026-10-25T02:30",
            (
                "happens twice in Europe/Oslo (the clocks go back an hour that night): add the "
                "offset, +02:00 for the first time or +01:00 for the second"
            ),
        ),
        ("2027-10-31T02:00", "happens twice in Europe/Oslo"),
        (
            "2026-07-01T08:00+01:00",
            (
                "+01:00 is not Europe/Oslo's offset at that moment (+02:00): write +02:00, "
                "Z for UTC, or the local time without an offset"
            ),
        ),
        ("2026-11-23T08:00+02:00", "+02:00 is not Europe/Oslo's offset at that moment (+01:00)"),
        ("2026-11-23T08:00-01:00", "is not Europe/Oslo's offset"),
        (
            "23.11.2026 08:00",
            (
                "is not a time: write it like 2026-11-23T08:00 (Europe/Oslo) or "
                "2026-11-23T08:00+01:00 (year first)"
            ),
        ),
        ("2026-11-23T08:00:00.0005", "is not a time"),
    ],
)
def test_intake_time_rules(written: str, message: str) -> None:
    problem = only_problem(json_refusal(document(pouches=[pouch(intake_at=written)]))[0])
    assert problem.field == "pouches[0].intake_at"
    assert message in problem.message


def test_times_around_the_spring_gap_are_fine() -> None:
    pouches = [pouch("P-1", "2027-03-28T01:59"), pouch("P-2", "2027-03-28T03:00")]
    roll = parse_json_manifests(encode(document(pouches=pouches)))[0]
    assert roll.pouches[1].intake_at - roll.pouches[0].intake_at == timedelta(minutes=1)


def test_decreasing_and_equal_intake_times() -> None:
    pouches = [
        pouch("P-1", "2026-11-23T08:00"),
        pouch("P-2", "2026-11-23T07:00"),
        pouch("P-3", "2026-11-23T06:00Z"),
    ]
    error, data = json_refusal(document(pouches=pouches))
    assert [(p.field, p.line) for p in error.problems] == [
        ("pouches[1].intake_at", line_of(data, "2026-11-23T07:00")),
        ("pouches[2].intake_at", line_of(data, "2026-11-23T06:00Z")),
    ]
    assert error.problems[0].message == (
        '2026-11-23T07:00:00+01:00 is not after 2026-11-23T08:00:00+01:00, the intake time of pouch "P-1" '
        f"listed before it (line {line_of(data, '2026-11-23T08:00')}): list the pouches in roll order, each "
        "later than the one before"
    )
    assert (
        'is not after 2026-11-23T07:00:00+01:00, the intake time of pouch "P-2"' in error.problems[1].message
    )


def test_duplicate_pouch_ids() -> None:
    pouches = [
        pouch("P-1", "2026-11-23T08:00"),
        pouch("P-2", "2026-11-23T14:00"),
        pouch("P-1", "2026-11-23T20:00"),
    ]
    error, data = json_refusal(document(pouches=pouches))
    problem = only_problem(error)
    first = line_of(data, '"P-1"')
    assert (problem.field, problem.line) == ("pouches[2].pouch_id", line_of(data, '"P-1"', 1))
    assert (
        problem.message
        == f'pouch id "P-1" is repeated (first on line {first}): every pouch of a roll has its own id'
    )


def test_duplicate_roll_in_one_file() -> None:
    doc = {"format": "dispenser-hub/roll-manifest", "version": 1, "manifests": [manifest(), manifest()]}
    problem = only_problem(json_refusal(doc)[0])
    assert problem.field == "manifests[1].roll_id"
    assert problem.message.startswith('roll "R-1" is given twice in this file (first on line 6)')


def test_printed_reference_must_not_be_the_national_id() -> None:
    error, _ = json_refusal(document(printed_patient_ref=NID_A))
    assert only_problem(error).field == "printed_patient_ref"
    assert "must be another reference" in error.format()
    assert NID_A not in error.format()


@pytest.mark.parametrize(
    ("quantity", "message"),
    [
        ("abc", '"abc" is not a number: write the number of units, like 1 or 0.5 (digits only'),
        (0, '"0" is 0: a drug line gives more than 0 units (or leave it out)'),
        ("0.000", "is 0"),
        (-1, '"-1" is negative: a quantity is more than 0'),
        (10000, '"10000" units in one pouch: at most 9999; check the quantity'),
        ("1e2", '"1e2" is not a number'),
        ("0,5", '"0,5": write the decimal with a point (0.5)'),
        ("0.1234", '"0.1234" has more than 3 decimals: round it'),
        ("1 tablett", "is not a number"),
        ("", "is empty: give the number of units, like 1 or 0.5"),
    ],
)
def test_quantity_rules(quantity: object, message: str) -> None:
    doc = document(pouches=[pouch(drugs=[drug(quantity=quantity)])])
    problem = only_problem(json_refusal(doc)[0])
    assert problem.field == "pouches[0].drugs[0].quantity"
    assert problem.message.startswith(message) or message in problem.message


def test_number_with_exponent_is_refused() -> None:
    data = encode(document()).replace(b'"quantity": 1', b'"quantity": 5e-1', 1)
    assert '"5e-1" is not a number' in only_problem(json_refusal(data)[0]).message


def test_all_problems_are_collected_in_file_order() -> None:
    error = refusal((DATA / "errors.json").read_bytes(), "errors.json")
    assert [(p.line, p.column, p.field) for p in error.problems] == [
        (5, 26, "patient_national_id"),
        (8, 16, "packed_at"),
        (17, 20, "pouches[1].intake_at"),
        (18, 73, "pouches[1].drugs[0].quantity"),
        (18, 80, "pouches[1].drugs[0].as_need"),
        (21, 19, "pouches[2].pouch_id"),
        (22, 20, "pouches[2].intake_at"),
        (23, 16, "pouches[2].drugs"),
    ]


def test_the_documented_error_listing_is_what_the_parser_says() -> None:
    reported = set()
    for name in ("errors.json", "errors.csv"):
        with pytest.raises(ManifestImportError) as caught:
            parse_manifests((DATA / name).read_bytes(), filename=name)
        reported.update(caught.value.format().splitlines())
    documented = re.findall(
        r"^(errors\.(?:json|csv):\d+.*)$", (DOCS / "roll-manifest-format.md").read_text(), re.MULTILINE
    )
    assert len(documented) >= 5
    assert set(documented) <= reported


# --- CSV problems --------------------------------------------------------------------------------


def csv_refusal(data: bytes) -> ManifestImportError:
    return refusal(data, "roll.csv")


def test_csv_problem_format_names_line_and_column() -> None:
    error = csv_refusal(csv_bytes([row(), row(quantity="abc")]))
    problem = only_problem(error)
    assert (problem.line, problem.column, problem.field) == (3, None, "quantity")
    assert error.format() == (
        'roll.csv:3: quantity: "abc" is not a number: write the number of units, like 1 or 0.5, or 0,5 '
        "(digits only, no units or exponents)"
    )


def test_csv_bad_national_id_is_never_shown() -> None:
    error = csv_refusal(csv_bytes([row(patient_national_id=NID_BAD)]))
    problem = only_problem(error)
    assert (problem.line, problem.field) == (2, "patient_national_id")
    assert "second check digit (digit 11) is wrong" in problem.message
    assert NID_BAD not in error.format()


def test_csv_national_id_that_lost_its_leading_zero() -> None:
    problem = only_problem(csv_refusal(csv_bytes([row(patient_national_id="1019010046")])))
    assert "a spreadsheet drops a leading zero from a number: format the column as text" in problem.message


@pytest.mark.parametrize("column", ["roll_id", "pouch_id", "intake_at", "drug_name", "strength", "quantity"])
def test_csv_missing_column(column: str) -> None:
    columns = tuple(name for name in COLUMNS if name != column)
    problem = only_problem(csv_refusal(csv_bytes([row()], columns=columns)))
    assert (problem.line, problem.field) == (1, column)
    assert problem.message.startswith(f"the header has no {column} column: add it (")


def test_csv_header_problems_all_at_once() -> None:
    columns = (
        "roll_id",
        "patient_nationalid",
        "pouch_id",
        "pouch_id",
        "",
        "colour",
        *COLUMNS[3:5],
        *COLUMNS[6:],
    )
    error = csv_refusal(csv_bytes([], columns=columns))
    assert {p.line for p in error.problems} == {1}
    text = error.format()
    assert (
        'roll.csv:1: unknown column "patient_nationalid": rename it to "patient_national_id", or remove it'
        in text
    )
    assert "roll.csv:1: pouch_id: is given twice in the header: remove one" in text
    assert "roll.csv:1: column 5 of the header has no name: name it or delete the column" in text
    assert 'unknown column "colour": the columns are roll_id, ' in text
    missing = {p.field for p in error.problems if p.message.startswith("the header has no")}
    assert missing == {"patient_national_id", "printed_patient_ref"}


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("roll_id|pouch_id|intake_at", "line 1 must be the header naming the columns, separated by ; or ,"),
        ("roll_id\tpouch_id\tintake_at", "the columns are separated by tabs: separate them with ; or ,"),
        ("R-1;15838510075;PX-1", "line 1 must be the header naming the columns"),
    ],
)
def test_csv_header_that_is_not_one(header: str, message: str) -> None:
    problem = only_problem(csv_refusal(f"{header}\nx\n".encode()))
    assert (problem.line, problem.field) == (1, "")
    assert message in problem.message
    assert NID_A not in problem.message


def test_csv_with_only_a_header() -> None:
    problem = only_problem(csv_refusal(csv_bytes([])))
    assert problem.message == "the file has only its header: add one row per drug line"


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (
            "printed_patient_ref",
            "PX-2",
            (
                '"PX-2" differs from "PX-1" on line 2, the first row of roll "R-1": every '
                "row of a roll gives the same printed_patient_ref"
            ),
        ),
        ("pharmacy", "Apotek 2", "every row of a roll gives the same pharmacy"),
        ("packed_at", "2026-11-20T14:01+01:00", "every row of a roll gives the same packed_at"),
        ("packed_at", "yesterday", '"yesterday" differs from "2026-11-20T14:00+01:00" on line 2'),
        (
            "patient_national_id",
            NID_B,
            'differs from line 2, the first row of roll "R-1": every row of a roll names the same patient',
        ),
        ("patient_national_id", NID_BAD, "names the same patient"),
    ],
)
def test_csv_rows_of_a_roll_must_agree(column: str, value: str, message: str) -> None:
    error = csv_refusal(
        csv_bytes([row(), row(pouch_id="P-2", intake_at="2026-11-23 20:00", **{column: value})])
    )
    problem = only_problem(error)
    assert (problem.line, problem.field) == (3, column)
    assert message in problem.message
    assert NID_B not in error.format()
    assert NID_BAD not in error.format()


def test_csv_rows_of_a_pouch_must_agree() -> None:
    problem = only_problem(csv_refusal(csv_bytes([row(), row(drug_name="B", intake_at="2026-11-23 09:00")])))
    assert (problem.line, problem.field) == (3, "intake_at")
    assert problem.message == (
        '"2026-11-23 09:00" differs from "2026-11-23 08:00" on line 2, the first row of pouch "P-1": '
        "every row of a pouch gives the same intake_at (or is this another pouch with the same id?)"
    )


def test_csv_duplicate_pouch_id_after_other_pouches() -> None:
    rows = [row(), row(pouch_id="P-2", intake_at="2026-11-23 20:00"), row(intake_at="2026-11-24 08:00")]
    problem = only_problem(csv_refusal(csv_bytes(rows)))
    assert (problem.line, problem.field) == (4, "pouch_id")
    assert problem.message == (
        'pouch "P-1" is repeated: it starts on line 2 and rows of other pouches come between; '
        "every pouch has its own id and its rows are together"
    )


def test_csv_roll_rows_must_be_together() -> None:
    rows = [row(), row(roll_id="R-2"), row(pouch_id="P-2", intake_at="2026-11-23 20:00")]
    problem = only_problem(csv_refusal(csv_bytes(rows)))
    assert (problem.line, problem.field) == (4, "roll_id")
    assert 'roll "R-1" starts on line 2 and rows of another roll come between' in problem.message


def test_csv_decreasing_intake_times_name_the_line() -> None:
    rows = [row(), row(pouch_id="P-2", intake_at="2026-11-23 07:00")]
    problem = only_problem(csv_refusal(csv_bytes(rows)))
    assert (problem.line, problem.field) == (3, "intake_at")
    assert (
        'is not after 2026-11-23T08:00:00+01:00, the intake time of pouch "P-1" listed before it (line 2)'
        in (problem.message)
    )


def test_csv_dst_gap_names_the_line() -> None:
    problem = only_problem(csv_refusal(csv_bytes([row(), row(pouch_id="P-2", intake_at="2027-03-28 02:15")])))
    assert (problem.line, problem.field) == (3, "intake_at")
    assert "does not exist in Europe/Oslo" in problem.message


def test_csv_decimal_comma_unquoted_in_a_comma_file() -> None:
    text = csv_bytes([row()], delimiter=",").decode().replace(",1,\n", ",0,5,\n")
    problem = only_problem(csv_refusal(text.encode()))
    assert (problem.line, problem.field) == (2, "")
    assert problem.message == (
        "has 12 values but the header has 11 columns (empty ones included): a decimal comma in an unquoted "
        "value? Write 0.5, put the value in quotes, or separate the columns with ;"
    )


def test_csv_rows_with_another_separator_than_the_header() -> None:
    text = (
        csv_bytes([row()]).decode()
        + ",".join(row(pouch_id="P-2", intake_at="2026-11-23 20:00").values())
        + "\n"
    )
    problem = only_problem(csv_refusal(text.encode()))
    assert problem.line == 3
    assert 'the values are separated by "," but the header by ";"; use one separator in the whole file' in (
        problem.message
    )


def test_csv_row_with_too_few_values() -> None:
    text = csv_bytes([row()]).decode() + "R-1;x\n"
    problem = only_problem(csv_refusal(text.encode()))
    assert problem.line == 3
    assert problem.message.endswith("give a value (possibly empty) for every column")


def test_csv_value_under_a_nameless_column() -> None:
    text = csv_bytes([row()]).decode().replace("\n", ";\n")
    text = text.rstrip("\n") + "oops\n"
    problem = only_problem(csv_refusal(text.encode()))
    assert problem.line == 2
    assert "a value in a column without a name" in problem.message


def test_csv_quoting_error_names_the_line() -> None:
    text = csv_bytes([row()]).decode() + 'R-1;"unclosed\n'
    problem = only_problem(csv_refusal(text.encode()))
    assert problem.line == 3
    assert "cannot be read as CSV" in problem.message


def test_csv_line_numbers_count_lines_inside_quoted_values() -> None:
    text = csv_bytes(
        [row(pharmacy="Apotek\n1"), row(pharmacy="Apotek\n1", drug_name="B", quantity="x")]
    ).decode()
    error = csv_refusal(text.encode())
    assert [(p.line, p.field) for p in error.problems] == [(2, "pharmacy"), (4, "quantity")]


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (
            "as_needed",
            "kanskje",
            '"kanskje" is not yes or no: write true or false (or leave it empty for false)',
        ),
        ("quantity", "0,5,0", "is not a number"),
        ("quantity", "1.5,0", "is not a number"),
        ("quantity", "", "is empty: give the number of units"),
        ("drug_name", "", "is empty: give the drug's name"),
        ("strength", " ", "is empty: give the drug's strength, like 500 mg"),
        ("pouch_id", "", "is empty: give the pouch id printed in the pouch's barcode"),
        ("intake_at", "", "is empty: give the intake time"),
        ("packed_at", "", "is empty: give when the roll was packed"),
        ("patient_national_id", "", "is empty: give the patient's national identity number (11 digits)"),
    ],
)
def test_csv_field_rules(column: str, value: str, message: str) -> None:
    problem = only_problem(csv_refusal(csv_bytes([row(**{column: value})])))
    assert (problem.line, problem.field) == (2, column)
    assert message in problem.message


# --- privacy ---------------------------------------------------------------------------------------


def test_national_ids_are_masked_wherever_they_appear_in_a_message() -> None:
    rows = [row(roll_id=f"{NID_A} R"), row(roll_id=f"{NID_A} R", drug_name="B", pharmacy=f"Apotek {NID_B}")]
    error = csv_refusal(csv_bytes(rows))
    assert NID_A not in error.format()
    assert NID_B not in error.format()
    assert "158385*****" in error.format()
    assert "128570*****" in error.format()
    doc = document()
    doc[NID_A] = 1
    error, _ = json_refusal(doc)
    assert NID_A not in error.format()


def test_problem_format() -> None:
    assert Problem(3, 7, "pouches[0].pouch_id", "m").format("a.json") == "a.json:3:7: pouches[0].pouch_id: m"
    assert Problem(3, None, "quantity", "m").format("a.csv") == "a.csv:3: quantity: m"
    assert Problem(1, None, "", "m").format("a.csv") == "a.csv:1: m"
    assert Problem(None, None, "", "m").format("a") == "a: m"
    error = ManifestImportError("a.csv", [Problem(9, None, "x", "late"), Problem(2, None, "y", "early")])
    assert str(error) == error.format() == "a.csv:2: y: early\na.csv:9: x: late"
    assert isinstance(error, ValueError)


# --- property tests --------------------------------------------------------------------------------

FILENAMES = st.sampled_from(["m.json", "m.csv", "m.txt", "m"])
CONTENT_TYPES = st.sampled_from([None, "application/json", "text/csv", "text/plain", "application/pdf"])
EXAMPLES = [
    (DOCS / "examples/roll-manifest.json").read_bytes(),
    (DOCS / "examples/roll-manifest.csv").read_bytes(),
    (DATA / "two-rolls.json").read_bytes(),
    (DATA / "two-rolls.csv").read_bytes(),
]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)


def _outcome(data: bytes, filename: str, content_type: str | None = None) -> str:
    """Parse; anything but a list of manifests or ManifestImportError fails the test."""
    try:
        manifests = parse_manifests(data, filename=filename, content_type=content_type)
    except ManifestImportError as error:
        refused = error
    else:
        assert all(isinstance(m, RollManifest) for m in manifests)
        return "parsed"
    assert refused.problems
    assert len(refused.problems) <= MAX_PROBLEMS
    assert NID_A not in refused.format()
    assert NID_B not in refused.format()
    return "refused"


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400), filename=FILENAMES, content_type=CONTENT_TYPES)
def test_arbitrary_bytes_raise_only_manifest_import_error(
    data: bytes, filename: str, content_type: str | None
) -> None:
    _outcome(data, filename, content_type)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    example=st.sampled_from(range(len(EXAMPLES))),
    edits=st.lists(
        st.tuples(
            st.integers(0, 4000), st.sampled_from(["insert", "delete", "replace"]), st.binary(max_size=3)
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_damaged_examples_raise_only_manifest_import_error(
    example: int, edits: list[tuple[int, str, bytes]]
) -> None:
    data = bytearray(EXAMPLES[example])
    for position, kind, chunk in edits:
        at = position % (len(data) + 1)
        if kind == "insert":
            data[at:at] = chunk
        elif kind == "delete":
            del data[at : at + len(chunk) + 1]
        else:
            data[at : at + len(chunk)] = chunk
    _outcome(bytes(data), "m.json" if example % 2 == 0 else "m.csv")


@settings(max_examples=200, deadline=None)
@given(
    target=st.sampled_from(
        [(), ("pouches", 0), ("pouches", 0, "drugs", 0), ("pouches",), ("pouches", 1, "drugs")]
    ),
    name=st.sampled_from(
        [
            "roll_id",
            "patient_national_id",
            "packed_at",
            "pouch_id",
            "intake_at",
            "quantity",
            "as_needed",
            "name",
            "extra",
            "format",
            "version",
            "manifests",
            "drugs",
            "pouches",
        ]
    ),
    value=JSON_VALUES,
)
def test_json_with_random_values_raises_only_manifest_import_error(
    target: tuple[str | int, ...], name: str, value: object
) -> None:
    doc: Any = document()
    node = doc
    for step in target:
        node = node[step]
    if isinstance(node, dict):
        node[name] = value
    else:
        node.append(value)
    _outcome(encode(doc), "m.json")


@settings(max_examples=300, deadline=None)
@given(
    written=st.from_regex(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}"
        r"(:[0-9]{2}(\.[0-9]{1,3})?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?",
        fullmatch=True,
    ),
    field=st.sampled_from(["packed_at", "intake_at"]),
)
def test_any_time_raises_only_manifest_import_error(written: str, field: str) -> None:
    if field == "packed_at":
        doc = document(packed_at=written)
    else:
        doc = document(pouches=[pouch("P-1", written), pouch("P-2", "2050-01-01T08:00")])
    _outcome(encode(doc), "m.json")
    _outcome(csv_bytes([row(**{field: written}), row(pouch_id="P-2", intake_at="2050-01-01 08:00")]), "m.csv")


@settings(max_examples=200, deadline=None)
@given(
    changes=st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from(COLUMNS), st.text(max_size=30)), min_size=1, max_size=4
    ),
    delimiter=st.sampled_from([";", ","]),
)
def test_csv_with_random_cells_raises_only_manifest_import_error(
    changes: list[tuple[int, str, str]], delimiter: str
) -> None:
    rows = default_rows()
    for index, column, text in changes:
        rows[index][column] = text
    _outcome(csv_bytes(rows, delimiter=delimiter), "m.csv")


def test_the_module_exports_its_api() -> None:
    assert set(manifest_import.__all__) >= {"parse_manifests", "ManifestImportError", "Problem"}
