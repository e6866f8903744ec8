"""The roll manifest import formats, behind ``dispenser_hub.services.manifest_import`` (import from there).

- ``problems``: ``Problem``, ``ManifestImportError`` and the collector that gathers every problem of a file;
- ``fields``: text decoding and the field rules both formats share (ids, national id, times, quantities);
- ``drafts``: a manifest as read (each value with where it came from) and its assembly into ``RollManifest``;
- ``jsontext``: a small JSON parser that keeps the position of every value;
- ``json_format`` and ``csv_format``: the two file formats.

The formats are documented in ``docs/roll-manifest-format.md``.
"""
