"""``python -m firmware_protocol.docgen [--check]``: see ``firmware_protocol.docgen.cli``."""

from firmware_protocol.docgen.cli import main

raise SystemExit(main())
