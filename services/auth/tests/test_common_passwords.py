"""The common-password list: the same 30 000 passwords as zxcvbn's "passwords" list, refused by
the policy, without keeping zxcvbn (all its frequency lists and graphs) resident in auth."""
import subprocess
import sys
from pathlib import Path

import pytest

from services.auth import services
from services.auth.common_passwords import CommonPasswords


def test_the_list_is_zxcvbns_password_list():
    from zxcvbn.frequency_lists import FREQUENCY_LISTS
    expected = {p.lower() for p in FREQUENCY_LISTS["passwords"]}
    assert len(services.COMMON_PASSWORDS) == len(expected) == 30000
    assert all(p in services.COMMON_PASSWORDS for p in expected)
    # ...and nothing else: words of the other lists that are not in the password list
    others = [w for w in FREQUENCY_LISTS["english_wikipedia"][:3000] if w.lower() not in expected]
    assert others and not any(w.lower() in services.COMMON_PASSWORDS for w in others)


@pytest.mark.parametrize("password", ["123456", "password", "iloveyou", "trustno1", "Dragon", "qwerty123",
                                      "1q2w3e4r"])
def test_known_common_passwords_are_refused(password):
    assert "Esta senha é muito comum. Escolha outra." in services.password_problems(password, email="x@y.com.br")


@pytest.mark.parametrize("password", ["girassol-azul-42", "balcao-contabil-2026", "passwords-are-fun"])
def test_uncommon_passwords_are_not_refused(password):
    assert password.lower() not in services.COMMON_PASSWORDS


def test_lookup_handles_duplicates_and_non_strings():
    small = CommonPasswords(["abc", "abc", "def"])
    assert len(small) == 2 and "abc" in small and "def" in small and "abd" not in small and None not in small


def test_importing_auth_does_not_load_zxcvbn():
    code = ("import sys, services.auth.services as s; "
            "print(len(s.COMMON_PASSWORDS), any(m.startswith('zxcvbn') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[3]).stdout.split()
    assert out == ["30000", "False"]
