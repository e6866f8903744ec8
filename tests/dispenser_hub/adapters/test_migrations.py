"""Migrations: ``upgrade`` builds exactly ``tables.metadata``, idempotently, on SQLite and PostgreSQL.

Also: ``check`` refuses a database that is not at the code's revision (the hub must not start on one), and
every field of every record has a column (a field added to the model without a column and a migration
fails here, before it silently vanishes on the way to the database).
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from dispenser_hub.adapters.db import create_engine_for, migrate, tables
from dispenser_hub.domain import doses, model, pouches, rolls
from tests.support.storage import SQL_BACKENDS

if TYPE_CHECKING:
    from pathlib import Path

# record -> (its table, {field: column} where they differ); the presence is flattened into the device row, a
# manifest's pouches (with their drug lines) are its JSON column ``pouches``.
_RECORD_TABLES: dict[type, tuple[type[tables.TableBase], dict[str, str]]] = {
    model.CareTeam: (tables.CareTeamRow, {}),
    model.Patient: (tables.PatientRow, {"national_id": "national_id_enc", "phone": "phone_enc"}),
    model.Contact: (tables.ContactRow, {"phone": "phone_enc"}),
    model.Device: (tables.DeviceRow, {"presence": ""}),
    model.Presence: (tables.DeviceRow, {"since": "online_since", "firmware": "reported_firmware"}),
    model.EnrollmentCode: (tables.EnrollmentCodeRow, {}),
    model.Binding: (tables.BindingRow, {}),
    model.DeviceEvent: (tables.DeviceEventRow, {}),
    model.DeadLetter: (tables.DeadLetterRow, {}),
    model.Command: (tables.CommandRow, {}),
    model.Alarm: (tables.AlarmRow, {}),
    model.AlarmLogEntry: (tables.AlarmLogRow, {}),
    model.AuditEntry: (tables.AuditLogRow, {}),
    pouches.RollManifest: (tables.RollManifestRow, {"patient_national_id": "patient_national_id_enc"}),
    rolls.RollLoad: (tables.RollLoadRow, {"max_spacing": "max_spacing_us"}),
    model.Deadline: (tables.DeadlineRow, {}),
    doses.Dose: (tables.DoseRow, {}),
    model.Notification: (tables.NotificationRow, {"address": "address_enc"}),
}


@pytest.fixture(params=SQL_BACKENDS)
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database (never migrated)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'new' / 'hub.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def _schema_differences(url: str, metadata: sa.MetaData) -> list[Any]:
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_upgrade_builds_exactly_the_tables_of_the_code_and_is_idempotent(empty_database: str) -> None:
    assert migrate.current(empty_database) is None
    migrate.upgrade(empty_database)
    assert migrate.current(empty_database) == migrate.head()
    assert _schema_differences(empty_database, tables.metadata) == []
    migrate.upgrade(empty_database)
    assert migrate.current(empty_database) == migrate.head()
    assert _schema_differences(empty_database, tables.metadata) == []


def test_the_schema_comparison_does_see_differences(empty_database: str) -> None:
    migrate.upgrade(empty_database)
    changed = sa.MetaData()
    for table in tables.metadata.sorted_tables:
        table.to_metadata(changed)
    sa.Index("ix_device_model", changed.tables["device"].c.model)
    changed.tables["alarm"].append_column(sa.Column("extra", sa.Integer()))
    kinds = sorted(str(difference[0]) for difference in _schema_differences(empty_database, changed))
    assert kinds == ["add_column", "add_index"]


def test_check_refuses_a_database_not_at_the_code_revision(empty_database: str) -> None:
    expected = f"database at revision none (empty), code expects {migrate.head()}: run dispenser-hub migrate"
    with pytest.raises(migrate.SchemaVersionError) as caught:
        migrate.check(empty_database)
    assert str(caught.value) == expected
    migrate.upgrade(empty_database)
    migrate.check(empty_database)


def test_a_database_at_0001_upgrades_to_the_later_tables_and_back(empty_database: str) -> None:
    later_tables = (
        {"roll_manifest", "roll_load", "dispensed_pouch"}
        | {
            "dose_settings",
            "pause",
            "device_schedule",
        }
        | {"dosett_plan", "tray_fill", "opened_pot", "supply"}
        | {"deadline", "lease"}
        | {"dose", "notification"}
        | {"team_roster", "patient_policy"}
    )
    migrate.upgrade(empty_database, "0001")
    with pytest.raises(migrate.SchemaVersionError, match="database at revision 0001, code expects"):
        migrate.check(empty_database)
    migrate.upgrade(empty_database)
    assert _schema_differences(empty_database, tables.metadata) == []
    command.downgrade(migrate.alembic_config(empty_database), "0001")
    assert migrate.current(empty_database) == "0001"
    engine = create_engine_for(empty_database)
    try:
        left = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert left == (set(tables.metadata.tables) - later_tables) | {"alembic_version"}


def test_downgrade_to_base_removes_every_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    migrate.upgrade(url)
    command.downgrade(migrate.alembic_config(url), "base")
    engine = create_engine_for(url)
    try:
        assert sa.inspect(engine).get_table_names() == ["alembic_version"]
    finally:
        engine.dispose()
    assert migrate.current(url) is None


def test_the_migrations_can_be_rendered_as_sql_for_a_dba(capsys: pytest.CaptureFixture[str]) -> None:
    config = migrate.alembic_config("postgresql://hub@db.example/hub")
    command.upgrade(config, "head", sql=True)
    script = capsys.readouterr().out
    assert "CREATE TABLE device (" in script
    assert "CONSTRAINT uq_alarm_open_key UNIQUE (open_key)" in script
    assert "TIMESTAMP WITH TIME ZONE" in script


@pytest.mark.parametrize("record", list(_RECORD_TABLES), ids=lambda record: record.__name__)
def test_every_record_field_has_a_column(record: type) -> None:
    row, renamed = _RECORD_TABLES[record]
    columns = set(row.__table__.columns.keys())  # type: ignore[attr-defined]
    missing = [
        spec.name for spec in fields(record) if renamed.get(spec.name, spec.name) not in columns | {""}
    ]
    assert missing == [], f"{record.__name__} fields without a column in {row.__tablename__}: add them"
