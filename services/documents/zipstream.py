"""Baixar selecionados: one ZIP written while it is sent, never whole in memory.

`zipfile` writes to `_Sink`, a file that cannot seek (so every member's sizes and CRC go in a data
descriptor after its bytes, as streaming ZIP writers do); after each chunk of a member the bytes
written so far are handed out and forgotten. Memory stays one chunk (64 KiB from the vault) plus
the compressor's window, whatever the sizes. Names inside the ZIP are safe (no path, no control
character, nothing Windows refuses) and unique (" (2)", " (3)"… before the extension).
"""
from __future__ import annotations

import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from services.common.dates import in_brasilia

from . import inspection


class _Sink:
    """An unseekable file: what zipfile wrote since the last `take()`."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


@dataclass(frozen=True)
class Member:
    name: str                                 # unique and safe (see member_names)
    size: int
    modified: datetime | None
    chunks: Callable[[], Iterable[bytes]]     # opened only when the member's turn comes


_WINDOWS_REFUSED = set('<>:"|?*')


def safe_name(name: str) -> str:
    """A document's name as a ZIP member: names the upload accepted (inspection.check_name) pass
    as they are; anything else has its separators and control or format characters (and the
    characters Windows refuses) replaced by "_"."""
    try:
        name = inspection.check_name(name)
    except inspection.RefusedFile:
        name = "".join("_" if ch in "/\\" or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") else ch
                       for ch in unicodedata.normalize("NFC", name)).strip()
    name = "".join("_" if ch in _WINDOWS_REFUSED else ch for ch in name).rstrip(" .").lstrip() or "documento"
    return name[:inspection.NAME_MAX]


def member_names(names: Iterable[str]) -> list[str]:
    """Each name made safe, and unique inside the ZIP (compared without case, as Windows and macOS
    do): the second "DAS.pdf" becomes "DAS (2).pdf"."""
    taken: set[str] = set()
    out: list[str] = []
    for raw in names:
        name = safe_name(raw)
        stem, dot, ext = name.rpartition(".")
        if not dot or not stem:
            stem, ext = name, ""
        else:
            ext = "." + ext
        candidate, n = name, 2
        while candidate.casefold() in taken:
            candidate = f"{stem} ({n}){ext}"
            n += 1
        taken.add(candidate.casefold())
        out.append(candidate)
    return out


def _date_time(moment: datetime | None) -> tuple[int, int, int, int, int, int]:
    if moment is None:
        return (1980, 1, 1, 0, 0, 0)
    local = in_brasilia(moment)
    if local.year < 1980:
        return (1980, 1, 1, 0, 0, 0)
    return (local.year, local.month, local.day, local.hour, local.minute, local.second)


def stream(members: Iterable[Member]) -> Iterator[bytes]:
    """The ZIP's bytes, a piece at a time (each member deflated; its date the publication's, in
    Brasília time)."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:  # type: ignore[call-overload]
        for member in members:
            info = zipfile.ZipInfo(member.name, date_time=_date_time(member.modified))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.file_size = member.size  # zip64 is decided from it (the data descriptor gives the real one)
            with archive.open(info, "w") as out:
                for chunk in member.chunks():
                    out.write(chunk)
                    data = sink.take()
                    if data:
                        yield data
            data = sink.take()
            if data:
                yield data
    yield sink.take()
