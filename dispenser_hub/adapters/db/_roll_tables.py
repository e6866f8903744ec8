"""The SQL tables of multidose rolls: pharmacy manifests, roll loads, dispensed pouches (see ``tables``).

Rules, and why:

* **A manifest is one row; its pouches are a JSON column** (``roll_manifest.pouches``: a list of
  ``{"pouch_id", "intake_at" (Unix ms), "drugs": [{"name", "strength", "quantity" (decimal text),
  "as_needed"}]}`` in the manifest's order). A manifest is written once and never changed (other content
  under the same roll id is a conflict), and it is only ever read whole: by roll id (the roll verdict and
  every pouch scan) or by patient (``manifests_for_patient``). No query looks into a pouch or a drug line.
  So one row per roll reads in one statement, with no join nor N+1 over a 4-week roll (about 100 pouches,
  several hundred drug lines), and the rules a table would enforce (unique pouch ids, increasing times,
  positive quantities) are checked by ``RollManifest`` itself whenever one is built, on write and on read.
  Quantities are decimal text (never floats) and times Unix milliseconds, so the manifest round-trips
  exactly and its ``content_digest`` is the same after reading.
* **The patient's national id is ciphertext** (``patient_national_id_enc``, context
  ``roll.patient_national_id``) with its keyed lookup hash (``patient_national_id_hash``, indexed with
  ``first_intake`` for ``manifests_for_patient``), as in ``patient``. The printed patient reference is not
  encrypted: it is printed on every pouch and travels in the devices' messages (stored in ``device_event``).
* ``content_digest`` (``RollManifest.content_digest``) tells "the same manifest again" (a no-op) from
  "other content under a known roll id" (a conflict) without decoding the stored one. ``first_intake`` and
  ``last_intake`` are copied out of the pouches so manifests can be ordered in SQL.
* **One active load per device and per roll**: ``roll_load.active_device_id``/``active_roll_id`` hold the
  device and roll while the load is active and NULL once it ended, under UNIQUE constraints (the binding
  trick, see ``tables``). ``max_spacing_us`` is the ``timedelta`` in whole microseconds (exact, portable).
* **A pouch is dispensed once**: UNIQUE (``roll_id``, ``pouch_id``) in ``dispensed_pouch``.
* Loads and dispensed pouches refer to their roll's manifest (foreign key on ``roll_manifest.roll_id``).
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - SQLModel reads the annotations at runtime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from dispenser_hub.adapters.db._columns import TableBase, optional_time_field, time_field


class RollManifestRow(TableBase, table=True):
    """A pharmacy's roll manifest; the patient's national id encrypted, the pouches as JSON."""

    __tablename__ = "roll_manifest"
    __table_args__ = (
        sa.UniqueConstraint("roll_id", name="uq_roll_manifest_roll_id"),
        sa.Index(
            "ix_roll_manifest_patient_national_id_hash_first_intake",
            "patient_national_id_hash",
            "first_intake",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    roll_id: str
    patient_national_id_enc: str
    patient_national_id_hash: str
    printed_patient_ref: str
    pharmacy: str
    packed_at: datetime = time_field()
    first_intake: datetime = time_field()
    last_intake: datetime = time_field()
    pouches: list[dict[str, Any]] = Field(sa_type=sa.JSON)
    content_digest: str
    imported_at: datetime = time_field()
    imported_by: str


class RollLoadRow(TableBase, table=True):
    """A roll accepted in a dispenser for a patient, until it ended."""

    __tablename__ = "roll_load"
    __table_args__ = (
        sa.UniqueConstraint("active_device_id", name="uq_roll_load_active_device_id"),
        sa.UniqueConstraint("active_roll_id", name="uq_roll_load_active_roll_id"),
        sa.Index("ix_roll_load_device_id_accepted_at", "device_id", "accepted_at"),
        sa.Index("ix_roll_load_patient_id_accepted_at", "patient_id", "accepted_at"),
        sa.Index("ix_roll_load_roll_id_accepted_at", "roll_id", "accepted_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    roll_id: str = Field(foreign_key="roll_manifest.roll_id")
    device_id: str = Field(foreign_key="device.device_id")
    patient_id: int = Field(foreign_key="patient.id")
    accepted_at: datetime = time_field()
    first_intake: datetime = time_field()
    last_intake: datetime = time_field()
    max_spacing_us: int = Field(sa_type=sa.BigInteger)
    """``RollLoad.max_spacing`` in microseconds."""
    ended_at: datetime | None = optional_time_field()
    end_reason: str | None = None
    active_device_id: str | None = None
    """``device_id`` while active, NULL once ended (one active load per device)."""
    active_roll_id: str | None = None
    """``roll_id`` while active, NULL once ended (one active load per roll)."""


class DispensedPouchRow(TableBase, table=True):
    """A pouch dispensed from a roll, once per (roll_id, pouch_id)."""

    __tablename__ = "dispensed_pouch"
    __table_args__ = (sa.UniqueConstraint("roll_id", "pouch_id", name="uq_dispensed_pouch_roll_id_pouch_id"),)

    id: int | None = Field(default=None, primary_key=True)
    roll_id: str = Field(foreign_key="roll_manifest.roll_id")
    pouch_id: str
    device_id: str = Field(foreign_key="device.device_id")
    dispensed_at: datetime = time_field()
