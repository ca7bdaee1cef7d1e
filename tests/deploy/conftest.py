"""tests/deploy: the distributed tests are deselected without a broker and PostgreSQL (see tests/conftest.py)."""
