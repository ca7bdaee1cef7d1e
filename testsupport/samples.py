"""Small files of each type the documents service accepts (and a few it refuses), made from real
content by the libraries that write them: for the inspection tests, the browser tests' uploads and
bench/. Every function returns bytes."""
from __future__ import annotations

import io
import struct
import zipfile

from PIL import Image


def png_bytes(size: tuple[int, int] = (24, 16), color: tuple[int, int, int] = (30, 90, 160)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def jpeg_bytes(size: tuple[int, int] = (24, 16), color: tuple[int, int, int] = (200, 120, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="JPEG")
    return out.getvalue()


def xlsx_bytes(rows: list[list] | None = None) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    for row in rows or [["Empresa", "Valor"], ["Padaria Pão Quente", 1234.56]]:
        workbook.active.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def zip_bytes(members: dict[str, bytes | str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def docx_bytes(text: str = "Contrato social") -> bytes:
    """A minimal WordprocessingML package: [Content_Types].xml, the package relationship and
    word/document.xml with one paragraph."""
    return zip_bytes({
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            'relationships/officeDocument" Target="word/document.xml"/></Relationships>'),
        "word/document.xml": (
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="{_W}">'
            f'<w:body><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:body></w:document>'),
    })


# --------------------------------------------------------------------------- OLE2 compound files

_FREE, _END, _FAT = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD
_SECTOR = 512
_MINI_CUTOFF = 4096


def _directory_entry(name: str, kind: int, *, child: int = _FREE, right: int = _FREE,
                     start: int = _END, size: int = 0) -> bytes:
    encoded = (name + "\0").encode("utf-16-le") if name else b""
    return (encoded.ljust(64, b"\0") + struct.pack("<HBB", len(encoded), kind, 1)
            + struct.pack("<III", _FREE, right, child) + bytes(16) + bytes(4) + bytes(16)
            + struct.pack("<IQ", start, size))


def compound_file(streams: dict[str, bytes], storages: tuple[str, ...] = ()) -> bytes:
    """An OLE2 compound file (version 3, 512-byte sectors) whose root holds `streams` (each
    padded to the mini-stream cutoff, so every stream lives in regular sectors) and empty
    `storages`, siblings in one chain: what `file` calls a "Composite Document File V2"."""
    entries = [(name, 2, data.ljust(max(_MINI_CUTOFF, -(-len(data) // _SECTOR) * _SECTOR), b"\0"))
               for name, data in streams.items()]
    entries += [(name, 1, b"") for name in storages]
    directory_sectors = (len(entries) + 1 + 3) // 4
    fat: list[int] = [_FAT]
    fat += [*range(2, directory_sectors + 1), _END]  # the directory starts at sector 1
    directory = []
    next_sector = 1 + directory_sectors
    body = b""
    for index, (name, kind, data) in enumerate(entries, start=1):
        right = index + 1 if index < len(entries) else _FREE
        if kind == 2:
            count = len(data) // _SECTOR
            fat += [*range(next_sector + 1, next_sector + count), _END]
            directory.append(_directory_entry(name, kind, right=right, start=next_sector, size=len(data)))
            next_sector += count
            body += data
        else:
            directory.append(_directory_entry(name, kind, right=right))
    root = _directory_entry("Root Entry", 5, child=1 if entries else _FREE)
    directory_bytes = b"".join([root, *directory]).ljust(directory_sectors * _SECTOR, b"\0")
    if len(fat) > _SECTOR // 4:
        raise ValueError("compound_file makes files of one FAT sector (at most 127 sectors)")
    fat_bytes = struct.pack(f"<{_SECTOR // 4}I", *fat, *[_FREE] * (_SECTOR // 4 - len(fat)))
    header = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(16)
              + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6) + bytes(6)
              + struct.pack("<IIIIIIIII", 0, 1, 1, 0, _MINI_CUTOFF, _END, 0, _END, 0)
              + struct.pack("<109I", 0, *[_FREE] * 108))
    return header + fat_bytes + directory_bytes + body


def xls_bytes(macros: bool = False) -> bytes:
    """An Excel 97-2003 workbook's container: a "Workbook" stream holding a BIFF8 BOF and EOF
    record (a stub, not a sheet Excel would show), "_VBA_PROJECT_CUR" too when `macros`."""
    biff = struct.pack("<HHHHHHII", 0x0809, 16, 0x0600, 0x0005, 0x0DBB, 0x07CC, 0, 0x06) + struct.pack("<HH", 0x0A, 0)
    return compound_file({"Workbook": biff}, ("_VBA_PROJECT_CUR",) if macros else ())


def word_doc_bytes() -> bytes:
    """A Word 97-2003 document's container (a "WordDocument" stream): an OLE2 file that is no XLS."""
    return compound_file({"WordDocument": b"\xec\xa5\xc1\x00"})
