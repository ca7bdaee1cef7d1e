"""The list of common passwords the password policy refuses: zxcvbn's "passwords" frequency
list (30 000 entries), read without importing zxcvbn and kept as 8-byte digests.

Importing `zxcvbn.frequency_lists` runs the package's __init__ (matching, adjacency graphs) and
keeps every frequency list resident (~17 MB in each auth process, measured) when only this one is
needed. The module's source has one line per list (`"passwords": "a,b,c".split(","),`): that
line's string literal is read (the file is streamed line by line) and each lower-cased password
is kept as a sorted 64-bit BLAKE2b digest (240 KB), looked up by bisection.
"""
from __future__ import annotations

import array
import ast
import bisect
import hashlib
import importlib.util
import os

_PREFIX = '"passwords":'
_SUFFIX = '.split(",")'


def _digest(password: str) -> int:
    return int.from_bytes(hashlib.blake2b(password.encode("utf-8"), digest_size=8).digest(), "big")


class CommonPasswords:
    """A set-like, read-only collection: `password.lower() in COMMON_PASSWORDS`, `len()`."""

    def __init__(self, passwords):
        digests = array.array("Q", (_digest(p) for p in passwords))  # no list of 30 000 strings
        ordered = sorted(digests)
        self._digests = array.array("Q", (d for i, d in enumerate(ordered) if i == 0 or d != ordered[i - 1]))

    def __contains__(self, password) -> bool:
        if not isinstance(password, str):
            return False
        digest = _digest(password)
        i = bisect.bisect_left(self._digests, digest)
        return i < len(self._digests) and self._digests[i] == digest

    def __len__(self) -> int:
        return len(self._digests)


def _source_path() -> str:
    spec = importlib.util.find_spec("zxcvbn")  # finds the package without executing it
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("zxcvbn is not installed")
    return os.path.join(list(spec.submodule_search_locations)[0], "frequency_lists.py")


def _split(text: str):
    start = 0
    while True:
        end = text.find(",", start)
        if end < 0:
            yield text[start:]
            return
        yield text[start:end]
        start = end + 1


def _passwords():
    """zxcvbn's "passwords" list, lower-cased (the same as FREQUENCY_LISTS["passwords"]), one at
    a time."""
    with open(_source_path(), encoding="utf-8") as source:
        for line in source:
            text = line.strip()
            if text.startswith(_PREFIX):
                literal = text[len(_PREFIX):].strip().rstrip(",")
                if literal.endswith(_SUFFIX):
                    literal = literal[:-len(_SUFFIX)]
                    if literal[:1] == '"' and literal[-1:] == '"' and "\\" not in literal and literal.count('"') == 2:
                        return _split(literal[1:-1].lower())  # a plain literal: no need to parse it
                    return _split(ast.literal_eval(literal).lower())
    # Another layout of the module (another zxcvbn version): import it, keep only this list.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # pragma: no cover
    return [p.lower() for p in FREQUENCY_LISTS["passwords"]]  # pragma: no cover


def load() -> CommonPasswords:
    return CommonPasswords(_passwords())
