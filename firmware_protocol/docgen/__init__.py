"""Generate the protocol's derived artefacts from the code, so that they can never drift from it.

``build_artifacts(repo_root)`` is pure: it reads ``firmware_protocol/PROTOCOL.md`` (if present) and returns
every generated file as ``{relative path: exact content}``:

- ``firmware_protocol/asyncapi.json``: an AsyncAPI 3.0.0 document (channels, messages, operations from the
  device's point of view, MQTT bindings);
- ``firmware_protocol/schemas/<type>.json`` and ``schemas/envelope.json``: JSON Schema 2020-12 of each
  message (envelope with its body);
- ``firmware_protocol/vectors/``: test vectors a firmware team checks byte for byte (keys, valid and
  invalid payloads, receiver sequence rules) and their README;
- ``firmware_protocol/PROTOCOL.md``: the blocks between ``<!-- BEGIN GENERATED: name -->`` and
  ``<!-- END GENERATED: name -->`` replaced; the prose around them is kept as it is.

Command line::

    python -m firmware_protocol.docgen          # write the files that changed
    python -m firmware_protocol.docgen --check  # exit 1 listing the files that are stale

Modules: ``common`` (paths, JSON and Markdown helpers), ``material`` (published test keys, CA, certificates,
ids), ``schemas`` (envelope models, JSON Schemas), ``vectors``, ``invalid_vectors`` and ``receiver_vectors``
(the test vectors), ``asyncapi``, ``blocks`` (content of PROTOCOL.md's generated blocks), ``markdown``
(PROTOCOL.md's markers and skeleton), ``build`` (assembly, staleness) and ``cli``.
"""

from __future__ import annotations

from firmware_protocol.docgen.asyncapi import ASYNCAPI_VERSION, DOCUMENT_VERSION, asyncapi_document
from firmware_protocol.docgen.build import build_artifacts, stale_files
from firmware_protocol.docgen.cli import main
from firmware_protocol.docgen.common import (
    ASYNCAPI_PATH,
    COMMAND,
    GENERATED_DIRS,
    PACKAGE,
    PROTOCOL_MD,
    SCHEMAS_DIR,
    VECTORS_DIR,
)
from firmware_protocol.docgen.invalid_vectors import invalid_vectors
from firmware_protocol.docgen.markdown import BLOCK_NAMES, fill_blocks
from firmware_protocol.docgen.material import (
    DEVICE_ID,
    NOW_MS,
    OTHER_DEVICE_ID,
    TEST_KEY_WARNING,
    TestMaterial,
    test_material,
)
from firmware_protocol.docgen.receiver_vectors import receiver_document
from firmware_protocol.docgen.schemas import SCHEMA_DIALECT, URN_PREFIX, envelope_schema, message_schema
from firmware_protocol.docgen.vectors import valid_vectors

__all__ = [
    "ASYNCAPI_PATH",
    "ASYNCAPI_VERSION",
    "BLOCK_NAMES",
    "COMMAND",
    "DEVICE_ID",
    "DOCUMENT_VERSION",
    "GENERATED_DIRS",
    "NOW_MS",
    "OTHER_DEVICE_ID",
    "PACKAGE",
    "PROTOCOL_MD",
    "SCHEMAS_DIR",
    "SCHEMA_DIALECT",
    "TEST_KEY_WARNING",
    "URN_PREFIX",
    "VECTORS_DIR",
    "TestMaterial",
    "asyncapi_document",
    "build_artifacts",
    "envelope_schema",
    "fill_blocks",
    "invalid_vectors",
    "main",
    "message_schema",
    "receiver_document",
    "stale_files",
    "test_material",
    "valid_vectors",
]
