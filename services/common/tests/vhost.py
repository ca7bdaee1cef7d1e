"""Kept for imports of the earlier location: the helper lives in services.common.testing."""
from services.common.testing import private_vhost  # noqa: F401
