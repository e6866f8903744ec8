"""``dispenser-hub`` administration commands: database, PKI, secrets, and the registry's operator actions.

Every command reads the settings (``--settings FILE`` or ``DISPENSER_*``), acts through the same services
as the API, and prints a result a person can read (``--json`` for scripts). Refusals print what to fix and
exit with code 2; settings problems exit with code 2 too. The actor recorded in the audit log is
``cli:<user>`` (``--as NAME`` overrides).
"""

from __future__ import annotations

import getpass
import json
import sys
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from dispenser_hub.adapters.pki import CertificateAuthority
from dispenser_hub.adapters.pki.service_certs import (
    DEFAULT_VALID_DAYS,
    KEY_TYPES,
    SERVICE_NAMES,
    issue_service_credential,
    write_service_credential,
)
from dispenser_hub.settings import Settings, SettingsError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from dispenser_hub.bootstrap import Storage
    from dispenser_hub.cli import Subparsers
    from dispenser_hub.services.escalation_admin import EscalationAdmin

EXIT_REFUSED = 2


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _print(args: argparse.Namespace, value: object, text: str) -> None:
    if args.json:
        data = asdict(value) if is_dataclass(value) and not isinstance(value, type) else value
        sys.stdout.write(json.dumps(data, default=_json_default, indent=2) + "\n")
    else:
        sys.stdout.write(text + "\n")


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.load(args.settings)


def _actor(args: argparse.Namespace) -> str:
    return str(args.actor or f"cli:{getpass.getuser()}")


def _storage(args: argparse.Namespace) -> Storage:
    from dispenser_hub.adapters.clock import SystemClock  # noqa: PLC0415 - database libraries only when used
    from dispenser_hub.bootstrap import open_storage  # noqa: PLC0415

    return open_storage(_settings(args), SystemClock())


def _guard(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn refusals into a message and exit code 2 (never a traceback for bad input)."""

    def guarded(args: argparse.Namespace) -> int:
        from dispenser_hub.adapters.db.migrate import SchemaVersionError  # noqa: PLC0415
        from dispenser_hub.adapters.pki import PkiError  # noqa: PLC0415
        from dispenser_hub.services.registry import RegistryError  # noqa: PLC0415

        try:
            return run(args)
        except (SettingsError, RegistryError, PkiError, SchemaVersionError, ValueError) as exc:
            field = getattr(exc, "field", None)
            sys.stderr.write(f"dispenser-hub: {f'{field}: ' if field else ''}{exc}\n")
            return EXIT_REFUSED

    return guarded


# -- commands --------------------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    import logging  # noqa: PLC0415

    from dispenser_hub.runtime import HubRuntime  # noqa: PLC0415 - web and MQTT libraries only when used
    from dispenser_hub.settings import settings_summary  # noqa: PLC0415

    settings = _settings(args)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name, value in settings_summary(settings).items():
        logging.getLogger("dispenser_hub").info("setting %s = %s", name, value)
    clock = None
    if args.clock is not None:
        from dispenser_hub.adapters.clock import SimulatedClock  # noqa: PLC0415 - only with --clock

        clock = SimulatedClock.from_spec(args.clock)
    runtime = HubRuntime(settings, clock=clock)
    sys.stderr.write(f"dispenser-hub: API on {runtime.api_url}, broker {settings.broker_address.url}\n")
    runtime.run_forever()
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from dispenser_hub.adapters.db.migrate import current, upgrade  # noqa: PLC0415

    url = _settings(args).database_url
    upgrade(url, args.revision)
    _print(args, {"revision": current(url)}, f"database at revision {current(url)}")
    return 0


def _pki_init(args: argparse.Namespace) -> int:
    settings = _settings(args)
    ca = CertificateAuthority.init(settings.pki_dir, organisation=args.organisation, now=datetime.now(UTC))
    _print(
        args,
        {
            "pki_dir": str(settings.pki_dir),
            "hub_kid": ca.hub_kid,
            "ca_certificate": str(ca.ca_certificate_file),
        },
        f"PKI created in {settings.pki_dir}\n  CA certificate (broker cafile): {ca.ca_certificate_file}\n"
        f"  hub signing key id: {ca.hub_kid}\nBack up this folder; the keys cannot be recovered.",
    )
    return 0


def _pki_issue_service(args: argparse.Namespace) -> int:
    ca = CertificateAuthority.load(_settings(args).pki_dir)
    credential = issue_service_credential(
        ca,
        args.name,
        now=datetime.now(UTC),
        dns_names=args.dns,
        ip_addresses=args.ip,
        key_type=args.key_type,
        valid_days=args.days,
    )
    try:
        files = write_service_credential(credential, args.out, ca_certificate_pem=ca.ca_certificate_pem)
    except OSError as exc:
        raise ValueError(f"cannot write into '{args.out}': {exc.strerror}") from None
    _print(
        args,
        {
            "name": credential.name,
            "certificate": str(files.certificate),
            "key": str(files.key),
            "ca_certificate": str(files.ca_certificate),
            "serial": str(credential.serial),
            "not_after": credential.not_after,
            "key_type": credential.key_type,
        },
        f"{credential.name} ({credential.key_type}) valid until {credential.not_after:%Y-%m-%d} UTC\n"
        f"  certificate: {files.certificate}\n"
        f"  key:         {files.key}  (mode 0600: for its service only)\n"
        f"  CA:          {files.ca_certificate}\n"
        f"  serial:      {credential.serial}",
    )
    return 0


def _retired_certificates(storage: Storage) -> list[tuple[int, datetime]]:
    """(serial, retirement time) of every retired device that was enrolled, i.e. has a certificate."""
    from dispenser_hub.domain.model import DeviceStatus  # noqa: PLC0415 - the domain only when used

    revoked: list[tuple[int, datetime]] = []
    offset, page = 0, 500
    with storage.uow_factory() as uow:
        while batch := uow.devices.select(status=DeviceStatus.RETIRED, offset=offset, limit=page):
            offset += len(batch)
            revoked += [
                (device.certificate_serial, device.retired_at or datetime.now(UTC))
                for device in batch
                if device.certificate_serial is not None
            ]
    return revoked


def _replace_file(path: Path, text: str, mode: int) -> None:
    """Write ``text`` beside ``path`` and rename it over ``path``: a reader never sees half a file."""
    import os  # noqa: PLC0415 - as the other commands: what a command needs is imported when it runs
    import tempfile  # noqa: PLC0415 - the same

    try:
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ValueError(f"cannot write '{path}': {exc.strerror}") from None
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        Path(temporary).chmod(mode)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _pki_crl(args: argparse.Namespace) -> int:
    from cryptography import x509  # noqa: PLC0415 - as the other commands: imported when it runs

    ca = CertificateAuthority.load(_settings(args).pki_dir)
    revoked = _retired_certificates(_storage(args))
    crl = ca.crl(revoked, now=datetime.now(UTC), next_update_days=args.days)
    _replace_file(args.out, crl, 0o644)
    next_update = x509.load_pem_x509_crl(crl.encode("ascii")).next_update_utc
    _print(
        args,
        {"crl": str(args.out), "revoked": len(revoked), "next_update": next_update},
        f"CRL of {len(revoked)} retired device certificate(s) written to {args.out}\n"
        f"  valid until {next_update:%Y-%m-%d %H:%M} UTC: write a new one before then, and reload Mosquitto",
    )
    return 0


def _secrets_generate(args: argparse.Namespace) -> int:
    import secrets  # noqa: PLC0415

    from dispenser_hub.adapters.crypto.fields import generate_key  # noqa: PLC0415

    kid = datetime.now(UTC).strftime("k%Y%m%d")
    values = {
        "DISPENSER_ENCRYPTION_KEYS": f"{kid}:{generate_key()}",
        "DISPENSER_LOOKUP_KEY": generate_key(),
        "DISPENSER_API_TOKENS": f"operator:{secrets.token_urlsafe(32)}",
    }
    _print(args, values, "\n".join(f"{name}={value}" for name, value in values.items()))
    return 0


def _device_register(args: argparse.Namespace) -> int:
    from firmware_protocol.messages import Family  # noqa: PLC0415

    storage = _storage(args)
    device, code = storage.registry.register_device(
        args.device_id, serial=args.serial, family=Family(args.family), model=args.model, by=_actor(args)
    )
    _print(
        args,
        {"device_id": device.device_id, "enrollment_code": code.code, "expires_at": code.expires_at},
        f"registered {device.device_id}\n  enrollment code: {code.code}  (shown once; expires "
        f"{code.expires_at:%Y-%m-%d %H:%M} UTC)",
    )
    return 0


def _device_code(args: argparse.Namespace) -> int:
    code = _storage(args).registry.new_enrollment_code(args.device_id, by=_actor(args))
    _print(
        args,
        code,
        f"enrollment code for {code.device_id}: {code.code}  (expires {code.expires_at:%Y-%m-%d %H:%M} UTC)",
    )
    return 0


def _device_retire(args: argparse.Namespace) -> int:
    device = _storage(args).registry.retire_device(args.device_id, by=_actor(args), reason=args.reason)
    _print(args, {"device_id": device.device_id, "status": device.status}, f"retired {device.device_id}")
    return 0


def _device_list(args: argparse.Namespace) -> int:
    with _storage(args).uow_factory() as uow:
        devices = uow.devices.select(limit=args.limit)
    rows = [
        {
            "device_id": d.device_id,
            "family": d.family,
            "status": d.status,
            "online": d.presence.online,
            "last_seen_at": d.presence.last_seen_at,
        }
        for d in devices
    ]
    text = "\n".join(
        f"{r['device_id']:<16} {d.family.value:<15} {d.status.value:<10} "
        f"{'online' if d.presence.online else 'offline':<8} {d.presence.last_seen_at or '-'}"
        for r, d in zip(rows, devices, strict=True)
    )
    _print(args, rows, text or "no devices")
    return 0


def _team_add(args: argparse.Namespace) -> int:
    from dispenser_hub.domain.model import CareTeam  # noqa: PLC0415

    team = _storage(args).registry.add_team(
        CareTeam(args.name, phone=args.phone, email=args.email), by=_actor(args)
    )
    _print(args, team, f"team {team.id}: {team.name}")
    return 0


def _read_document(path: Path) -> object:
    """A JSON document from ``path`` (``-``: standard input); ``ValueError`` saying what is wrong."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
        return json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"{path}: not a readable JSON document ({exc})"
        raise ValueError(msg) from None


def _escalation_admin(args: argparse.Namespace) -> EscalationAdmin:
    from dispenser_hub.adapters.clock import SystemClock  # noqa: PLC0415
    from dispenser_hub.services.escalation_admin import EscalationAdmin  # noqa: PLC0415

    return EscalationAdmin(_storage(args).uow_factory, SystemClock())


def _team_roster(args: argparse.Namespace) -> int:
    from dispenser_hub.domain.rosters import roster_document  # noqa: PLC0415

    admin = _escalation_admin(args)
    record = admin.set_roster(args.team_id, _read_document(args.file), by=_actor(args))
    on_call, gaps = admin.coverage(record)
    who = ", ".join(member.ref for member in on_call) or "nobody"
    _print(
        args,
        roster_document(record.roster),
        f"team {record.team_id}: {len(record.roster.staff)} staff, {len(record.roster.rota)} weekly shifts; "
        f"on call now: {who}; {len(gaps)} gap(s) in the coming week",
    )
    return 0


def _patient_policy(args: argparse.Namespace) -> int:
    from dispenser_hub.domain.escalation import policy_document  # noqa: PLC0415

    admin = _escalation_admin(args)
    if args.default:
        admin.reset_policy(args.patient_id, by=_actor(args))
    elif args.file is not None:
        admin.set_policy(args.patient_id, _read_document(args.file), by=_actor(args))
    policy, record, warnings = admin.policy(args.patient_id)
    lines = [f"patient {args.patient_id}: {policy.name} ({'own' if record else 'default'})"]
    lines += [f"  warning: steps[{w.index}] ({w.target.value}): {w.reason}" for w in warnings]
    _print(args, policy_document(policy), "\n".join(lines))
    return 0


def _patient_add(args: argparse.Namespace) -> int:
    from dispenser_hub.domain.model import Patient, Responsibility  # noqa: PLC0415

    patient = _storage(args).registry.add_patient(
        Patient(
            args.name,
            args.national_id,
            Responsibility(args.responsibility),
            phone=args.phone,
            address=args.address,
            team_id=args.team,
        ),
        by=_actor(args),
    )
    _print(args, {"patient_id": patient.id}, f"patient {patient.id} registered")
    return 0


def _bind(args: argparse.Namespace) -> int:
    binding = _storage(args).registry.bind(
        args.device_id, args.patient_id, by=_actor(args), reason=args.reason
    )
    _print(args, binding, f"bound {binding.device_id} to patient {binding.patient_id}")
    return 0


def _unbind(args: argparse.Namespace) -> int:
    binding = _storage(args).registry.unbind(args.device_id, by=_actor(args), reason=args.reason)
    _print(args, binding, f"unbound {binding.device_id} from patient {binding.patient_id}")
    return 0


def _roll_import(args: argparse.Namespace) -> int:
    from dispenser_hub.adapters.clock import SystemClock  # noqa: PLC0415
    from dispenser_hub.services.manifest_import import MAX_BYTES, ManifestImportError  # noqa: PLC0415
    from dispenser_hub.services.manifest_service import ManifestImporter  # noqa: PLC0415

    path: Path = args.file
    name = str(path)
    try:
        with path.open("rb") as file:
            data = file.read(MAX_BYTES + 1)  # parse_manifests refuses anything larger
    except OSError as exc:
        sys.stderr.write(f"dispenser-hub: {name}: cannot read the file: {exc.strerror or exc}\n")
        return EXIT_REFUSED
    storage = _storage(args)
    try:
        result = ManifestImporter(storage.uow_factory, SystemClock()).import_file(
            data, filename=name, by=_actor(args)
        )
    except ManifestImportError as exc:
        sys.stderr.write(exc.format() + f"\ndispenser-hub: {name}: nothing imported\n")
        return EXIT_REFUSED
    lines = [
        f"{roll.roll_id}: {roll.status} ({roll.pouches} pouches, patient {roll.patient_id})"
        for roll in result.rolls
    ]
    lines.append(f"{name}: {result.imported} imported, {result.unchanged} unchanged")
    _print(
        args,
        {
            "filename": name,
            "rolls": [asdict(roll) for roll in result.rolls],
            "imported": result.imported,
            "unchanged": result.unchanged,
        },
        "\n".join(lines),
    )
    return 0


# -- parser ----------------------------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settings", type=Path, help="settings file (default: $DISPENSER_SETTINGS_FILE)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--as", dest="actor", metavar="NAME", help="actor for the audit log (default: cli:<user>)"
    )


def _command(
    subparsers: Subparsers, name: str, handler: Callable[[argparse.Namespace], int], help_text: str
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    _common(parser)
    parser.set_defaults(handler=_guard(handler))
    return parser


def _add_pki_commands(subparsers: Subparsers) -> None:
    pki = subparsers.add_parser(
        "pki", help="the hub's device CA and the certificates it issues"
    ).add_subparsers(metavar="ACTION", required=True)
    init = _command(pki, "init", _pki_init, "create the CA and the hub signing key in DISPENSER_PKI_DIR")
    init.add_argument("--organisation", default="dispenser-hub", help="CA organisation name")
    service = _command(
        pki,
        "issue-service",
        _pki_issue_service,
        "issue a certificate and key for the broker, the hub, the claim credential or the inspector",
    )
    service.add_argument("--name", required=True, choices=SERVICE_NAMES, help="which service")
    service.add_argument(
        "--out", required=True, type=Path, help="directory for NAME.pem, NAME.key and ca.pem"
    )
    service.add_argument(
        "--dns",
        action="append",
        default=[],
        metavar="NAME",
        help="broker only: a DNS name clients use (repeat)",
    )
    service.add_argument(
        "--ip",
        action="append",
        default=[],
        metavar="ADDR",
        help="broker only: an IP address clients use (repeat)",
    )
    service.add_argument("--key-type", choices=KEY_TYPES, default="ed25519", help="default: %(default)s")
    service.add_argument(
        "--days", type=int, default=DEFAULT_VALID_DAYS, help="validity (default: %(default)s)"
    )
    crl = _command(
        pki, "crl", _pki_crl, "write the CRL of retired devices' certificates (Mosquitto's crlfile)"
    )
    crl.add_argument("--out", required=True, type=Path, help="the CRL file (replaced atomically)")
    crl.add_argument("--days", type=int, default=7, help="days until its next update (default: %(default)s)")


def _add_people_commands(subparsers: Subparsers) -> None:
    """Register team add/roster and patient add/policy."""
    team = subparsers.add_parser("team", help="home-care teams").add_subparsers(
        metavar="ACTION", required=True
    )
    team_add = _command(team, "add", _team_add, "register a home-care team (district)")
    team_add.add_argument("name")
    team_add.add_argument("--phone")
    team_add.add_argument("--email")
    roster = _command(team, "roster", _team_roster, "replace a team's on-call roster (staff and weekly rota)")
    roster.add_argument("team_id", type=int)
    roster.add_argument("file", type=Path, help="the roster as JSON (as PUT /teams/{id}/roster; - for stdin)")

    patient = subparsers.add_parser("patient", help="patients").add_subparsers(
        metavar="ACTION", required=True
    )
    policy = _command(patient, "policy", _patient_policy, "show or set a patient's escalation policy")
    policy.add_argument("patient_id", type=int)
    choice = policy.add_mutually_exclusive_group()
    choice.add_argument(
        "--set", dest="file", type=Path, help="the patient's own policy as JSON (- for stdin)"
    )
    choice.add_argument("--default", action="store_true", help="back to the responsibility level's default")
    patient_add = _command(patient, "add", _patient_add, "register a patient (national id number validated)")
    patient_add.add_argument("--name", required=True)
    patient_add.add_argument("--national-id", required=True, help="11 digits (fødselsnummer or D-number)")
    patient_add.add_argument(
        "--responsibility",
        required=True,
        choices=["patient_or_relative", "response_centre", "home_care"],
        help="who follows up the medication (decides escalation)",
    )
    patient_add.add_argument("--team", type=int, help="home-care team id (required for home_care)")
    patient_add.add_argument("--phone")
    patient_add.add_argument("--address")


def add_admin_commands(subparsers: Subparsers) -> None:
    """Register serve, migrate, pki, secrets, team, patient, device, roll, bind and unbind."""
    serve = _command(
        subparsers, "serve", _serve, "run the hub: MQTT ingest, timers and the HTTP API (/api/v1)"
    )
    serve.add_argument(
        "--clock",
        metavar="SPEC",
        help="follow a simulated fleet's clock (dispenser-sim's SIM_MS@REAL_MSxSPEED), for development "
        "and tests: a restarted hub continues on the same simulated timeline (default: the system clock)",
    )
    migrate = _command(subparsers, "migrate", _migrate, "upgrade the database schema (Alembic)")
    migrate.add_argument("--revision", default="head", help="target revision (default: %(default)s)")

    _add_pki_commands(subparsers)

    secrets_cmd = subparsers.add_parser("secrets", help="generate secrets").add_subparsers(
        metavar="ACTION", required=True
    )
    _command(secrets_cmd, "generate", _secrets_generate, "print fresh values for the secret settings")

    device = subparsers.add_parser("device", help="register, list and retire devices").add_subparsers(
        metavar="ACTION", required=True
    )
    register = _command(device, "register", _device_register, "register a device; prints its enrollment code")
    register.add_argument("device_id")
    register.add_argument("--serial", required=True)
    register.add_argument("--family", required=True, choices=["multidose_roll", "dose_pot"])
    register.add_argument("--model", required=True)
    code = _command(device, "code", _device_code, "make a new one-time enrollment code")
    code.add_argument("device_id")
    retire = _command(device, "retire", _device_retire, "retire a device (revokes its key, ends its binding)")
    retire.add_argument("device_id")
    retire.add_argument("--reason", required=True)
    listing = _command(device, "list", _device_list, "list devices")
    listing.add_argument("--limit", type=int, default=100)

    _add_people_commands(subparsers)

    roll = subparsers.add_parser("roll", help="multidose rolls: pharmacy manifests").add_subparsers(
        metavar="ACTION", required=True
    )
    roll_import = _command(
        roll,
        "import",
        _roll_import,
        "import a roll manifest file (JSON or CSV, docs/roll-manifest-format.md): all rolls or none; "
        "the same manifest again is unchanged, a different one for a known roll id is refused",
    )
    roll_import.add_argument("file", type=Path, help="the manifest file (.json or .csv)")

    bind = _command(subparsers, "bind", _bind, "bind a device to a patient")
    bind.add_argument("device_id")
    bind.add_argument("patient_id", type=int)
    bind.add_argument("--reason", required=True)
    unbind = _command(subparsers, "unbind", _unbind, "end a device's binding")
    unbind.add_argument("device_id")
    unbind.add_argument("--reason", required=True)
