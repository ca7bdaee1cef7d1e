"""A firm's logo (Configurações › Escritório): an uploaded PNG or JPEG of at most 1 MB, checked and
re-encoded with Pillow before anything is stored, so that what the portal serves and the e-mails
carry is an image we made ourselves:

  * only Pillow's PNG and JPEG decoders are tried (`formats=`): any other file — another image
    format, an SVG, a PDF, a renamed executable — is refused, whatever its name says;
  * decompression bombs are refused before any pixel is decoded: Pillow's own check at open
    (Image.MAX_IMAGE_PIXELS: DecompressionBombWarning turned into an error here, and
    DecompressionBombError beyond twice the limit), and below it LOGO_MAX_PIXELS, far smaller,
    since no header logo needs more;
  * the pixels are copied into a new image — no EXIF (GPS, camera, dates), ICC profile, XMP or PNG
    text chunk survives — after the EXIF orientation is applied, and scaled down to fit LOGO_BOX
    (twice the header's height, for high-density screens).

Nothing here touches the database."""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from flask_babel import gettext as _

if TYPE_CHECKING:
    from PIL import Image

LOGO_MAX_BYTES = 1024 * 1024
LOGO_MAX_PIXELS = 4096 * 4096
LOGO_BOX = (400, 120)  # width, height: the header shows it at most 200 × 60 CSS pixels
MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg"}


class LogoError(ValueError):
    """A refused upload, with the pt-BR message the form shows under the field."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Logo:
    data: bytes
    media_type: str  # MEDIA_TYPES' values
    width: int
    height: int

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def read_logo(stream: BinaryIO) -> Logo:
    """The uploaded file (read at most 1 MB + 1 byte of it), checked and re-encoded."""
    data = stream.read(LOGO_MAX_BYTES + 1)
    if not data:
        raise LogoError(_("O arquivo está vazio. Escolha uma imagem PNG ou JPEG."))
    if len(data) > LOGO_MAX_BYTES:
        raise LogoError(_("O logo deve ter no máximo 1 MB. Reduza a imagem e envie de novo."))
    return reencode(data)


def _too_large() -> LogoError:
    return LogoError(_("A imagem tem pixels demais (mais de %(width)s × %(height)s). Envie uma imagem menor.",
                       width=4096, height=4096))


def reencode(data: bytes) -> Logo:
    """A PNG (or JPEG, from a JPEG without transparency) made from the pixels of `data`.

    Pillow is imported here, not with the module: only a logo upload needs it, and a users web
    worker that serves the lists and forms keeps its ~2 MB out."""
    from PIL import Image, UnidentifiedImageError
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=list(MEDIA_TYPES)) as image:
                source_format = image.format or ""
                width, height = image.size
                if width < 1 or height < 1 or width * height > LOGO_MAX_PIXELS:
                    raise _too_large()
                image.load()
                pixels = _pixels(image)
    except LogoError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_large() from None
    except UnidentifiedImageError:
        raise LogoError(_("O arquivo não é uma imagem PNG ou JPEG. Envie o logo em PNG ou JPEG.")) from None
    except (OSError, SyntaxError, ValueError, EOFError):  # truncated, corrupt, an unsupported variant
        raise LogoError(_("Não foi possível ler a imagem: o arquivo está corrompido ou incompleto. "
                          "Envie o logo em PNG ou JPEG.")) from None
    out = io.BytesIO()
    if source_format == "JPEG" and pixels.mode == "RGB":
        pixels.save(out, "JPEG", quality=90, optimize=True)
        media_type = MEDIA_TYPES["JPEG"]
    else:
        pixels.save(out, "PNG", optimize=True)
        media_type = MEDIA_TYPES["PNG"]
    return Logo(out.getvalue(), media_type, pixels.width, pixels.height)


def _has_transparency(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _pixels(image: Image.Image) -> Image.Image:
    """The image's pixels, upright, in RGB or RGBA, fitted into LOGO_BOX, in a new image that
    carries nothing else (Image.new starts with an empty `info`: no EXIF, ICC, XMP or text)."""
    from PIL import Image, ImageOps
    upright = ImageOps.exif_transpose(image) or image
    if upright.mode.startswith("I") or upright.mode == "F":  # 16/32-bit greyscale: to 8 bits
        upright = upright.point(lambda value: value / 256).convert("L")
    mode = "RGBA" if _has_transparency(upright) else "RGB"
    converted = upright.convert(mode)
    converted.thumbnail(LOGO_BOX, Image.Resampling.LANCZOS)
    clean = Image.new(mode, converted.size)
    clean.paste(converted, (0, 0))
    return clean
