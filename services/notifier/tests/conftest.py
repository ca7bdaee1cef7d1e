"""The notifier's tests run as the embedded mode does (`balcao run` on 127.0.0.1): without an SMTP
URL its e-mails land in the dev mailbox, whose pages these tests read. The rules that keep the
mailbox out of every other mode are in test_mailbox_rules.py."""
from __future__ import annotations

import pytest

from services.common.embedded import embedded_config


@pytest.fixture
def config(config):
    return embedded_config(config)


@pytest.fixture
def db(config):
    from services.common.runtime import database
    return database("notifier", config)


@pytest.fixture
def keyring(config):
    from services.common.keys import KeyRing
    return KeyRing(config.keys_dir)
