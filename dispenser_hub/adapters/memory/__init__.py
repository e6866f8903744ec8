"""In-memory storage: every repository of ``dispenser_hub.ports`` for fast unit tests of the services.

``MemoryStore()`` is a ``UnitOfWorkFactory``: ``with store() as uow: ...; uow.commit()``. It follows the same
rules as the SQL adapter (``adapters.db``): uniqueness, references, orders, errors and transactions; one
contract test suite runs over both. Rules and their reasons: ``store`` (transactions), ``_registry``,
``_activity`` and ``_rolls`` (repositories), ``adapters.storage_rules`` (shared messages and value
normalisation).
"""

from dispenser_hub.adapters.memory.store import MemoryStore, MemoryUnitOfWork

__all__ = ["MemoryStore", "MemoryUnitOfWork"]
