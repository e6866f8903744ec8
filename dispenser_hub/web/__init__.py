"""The hub's web layer: the REST API under ``/api/v1`` (the operator console comes later).

``create_app(ApiContext(...))`` builds the FastAPI application; nothing is built at import time.
"""

from dispenser_hub.web.app import create_app
from dispenser_hub.web.context import ApiContext
from dispenser_hub.web.tokens import operator_tokens

__all__ = ["ApiContext", "create_app", "operator_tokens"]
