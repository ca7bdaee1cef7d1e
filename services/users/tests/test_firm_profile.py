"""Configurações › Escritório: the display name (the Razão social and CNPJ stay as created), the logo
(PNG/JPEG up to 1 MB, re-encoded: metadata stripped, bombs and non-images refused), the Reply-To;
the header of the firm's pages; the logo served to the firm's members only, cached by its hash;
firm.profile_changed as a contract with the notifier; the e-mails sent on the firm's behalf (a
real SMTP conversation); audit entries; 404 for Colaboradores, clients and other firms."""
from __future__ import annotations

import dataclasses
import email
import email.policy
import io
import json
import re
import struct
import uuid
import zlib
from email.utils import parseaddr

import pytest
from PIL import Image
from sqlalchemy import select

from services.common import events
from services.common.messaging import Outcome, handle_message
from services.common.runtime import database
from services.notifier import consumers as notifier_consumers
from services.notifier import models as notifier_models
from services.users import models, services
from services.users.logos import LOGO_BOX
from testsupport import InProcessBus, csrf_token

from .conftest import Person, login, main_html, outbox_events, text_of, users_db

# --------------------------------------------------------------------------- images made here


def png(size=(640, 320), color=(11, 93, 122, 255), mode="RGBA") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color if mode == "RGBA" else color[:3]).save(out, "PNG")
    return out.getvalue()


def jpeg_with_exif(size=(1600, 800)) -> bytes:
    """A photo as a phone takes it: EXIF with the camera, a GPS position, an orientation (6: the
    picture is to be turned 90° clockwise) and a comment."""
    image = Image.new("RGB", size, (200, 30, 30))
    exif = image.getexif()
    exif[0x010F] = "CameraMaker-XYZ"      # Make
    exif[0x0131] = "Editor-Secreto-1.0"   # Software
    exif[0x0112] = 6                       # Orientation
    exif.get_ifd(0x8825)[2] = (23.0, 33.0, 1.0)  # GPSLatitude
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, comment=b"comentario-secreto", quality=95)
    return out.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of width × height all-black pixels: a few KB that would decode to
    width × height pixels (the decompression bomb), written without ever holding them."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    compressor = zlib.compressobj(9)
    row = b"\0" * (1 + (width + 7) // 8)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def noise_png_over_1mb() -> bytes:
    """A real PNG just over 1 MB (random pixels do not compress)."""
    import os
    side = 600
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    image.save(out, "PNG")
    data = out.getvalue()
    assert len(data) > 1024 * 1024
    return data


# --------------------------------------------------------------------------- helpers

def _url(firm) -> str:
    return f"/e/{firm.slug}/configuracoes/escritorio"


def _save(client, firm, *, name, reply_to="", logo: bytes | None = None, filename="logo.png",
          remove_logo=False, csrf=True):
    page = client.get(_url(firm)).get_data(as_text=True)
    data = {"name": name, "reply_to": reply_to}
    if csrf:
        data["csrf_token"] = csrf_token(page)
    if logo is not None:
        data["logo"] = (io.BytesIO(logo), filename)
    if remove_logo:
        data["remove_logo"] = "1"
    return client.post(_url(firm), data=data, content_type="multipart/form-data")


def _firm(config, firm) -> models.Firm:
    with users_db(config).begin() as s:
        return s.get(models.Firm, firm.id)


def _logo_row(config, firm) -> models.FirmLogo | None:
    with users_db(config).begin() as s:
        return s.get(models.FirmLogo, firm.id)


def _audit(config, firm) -> list[models.AuditEntry]:
    with users_db(config).begin() as s:
        return list(s.scalars(select(models.AuditEntry).where(models.AuditEntry.firm_id == firm.id,
                                                              models.AuditEntry.action == "firm.profile_changed")
                              .order_by(models.AuditEntry.at)))


def _header(html: str) -> str:
    match = re.search(r"<header.*?</header>", html, re.S)
    assert match
    return match.group(0)


def _field_value(html: str, name: str) -> str:
    match = re.search(rf'<input id="f-{name}" name="{name}" type="[a-z]+" value="([^"]*)"', html)
    assert match, name
    return match.group(1)


def _colaborador(config, firm) -> Person:
    paula = Person(uuid.uuid4(), "paula@alfa.com.br", "Paula Reis")
    with users_db(config).begin() as s:
        services.add_staff_member(s, firm=s.get(models.Firm, firm.id), identity_id=paula.identity_id,
                                  name=paula.name, email=paula.email, role="staff")
    return paula


# --------------------------------------------------------------------------- the page


def test_admin_sets_name_logo_and_reply_to_and_the_header_shows_them(browser_client, config, world):
    login(browser_client, config, world.ana)
    page = browser_client.get(_url(world.alfa)).get_data(as_text=True)
    text = text_of(main_html(page))
    assert "Razão social Contabilidade Alfa" in text and "CNPJ 00.000.011/0001-" in text
    assert _field_value(page, "name") == "Contabilidade Alfa"
    assert 'enctype="multipart/form-data"' in page

    response = _save(browser_client, world.alfa, name="  Alfa   Contábil ", reply_to=" Atendimento@Alfa.com.br ",
                     logo=png())
    assert response.status_code == 303 and response.headers["Location"].endswith(_url(world.alfa))
    page = browser_client.get(_url(world.alfa)).get_data(as_text=True)
    assert "Perfil do escritório salvo." in page and "Razão social Contabilidade Alfa" in text_of(main_html(page))
    firm = _firm(config, world.alfa)
    assert (firm.name, firm.legal_name, firm.cnpj, firm.slug) == \
           ("Alfa Contábil", "Contabilidade Alfa", world.alfa.cnpj, world.alfa.slug)
    assert firm.reply_to == "atendimento@alfa.com.br" and firm.profile_revision == 2  # 1: as created
    logo = _logo_row(config, world.alfa)
    assert logo is not None and firm.logo_digest == logo.digest and logo.media_type == "image/png"
    assert (logo.width, logo.height) == (240, 120)  # 640 × 320 fitted into 400 × 120

    home = browser_client.get(f"/e/{world.alfa.slug}/").get_data(as_text=True)
    header = _header(home)
    logo_url = f"/e/{world.alfa.slug}/logo/{logo.digest}"
    assert f'src="{logo_url}"' in header and "Alfa Contábil" in text_of(header)
    assert f'<option value="{world.alfa.slug}" selected>Alfa Contábil</option>' in header

    image = browser_client.get(logo_url)
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/png"
    assert image.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    assert image.headers["ETag"] == f'"{logo.digest}"'
    assert Image.open(io.BytesIO(image.data)).size == (240, 120)
    again = browser_client.get(logo_url, headers={"If-None-Match": f'"{logo.digest}"'})
    assert again.status_code == 304 and again.data == b""


def test_a_photo_loses_its_metadata_is_turned_upright_and_fits_the_header(browser_client, config, world):
    photo = jpeg_with_exif()
    assert b"CameraMaker-XYZ" in photo and b"comentario-secreto" in photo
    login(browser_client, config, world.ana)
    assert _save(browser_client, world.alfa, name="Contabilidade Alfa", logo=photo, filename="foto.jpg").status_code == 303
    logo = _logo_row(config, world.alfa)
    assert logo.media_type == "image/jpeg"
    for secret in (b"CameraMaker-XYZ", b"Editor-Secreto", b"comentario-secreto", b"Exif", b"GPS"):
        assert secret not in logo.data
    image = Image.open(io.BytesIO(logo.data))
    assert not image.getexif() and "exif" not in image.info and "icc_profile" not in image.info
    # 1600 × 800 turned upright (800 × 1600), then fitted into 400 × 120
    assert image.size == (60, 120) and image.width <= LOGO_BOX[0] and image.height <= LOGO_BOX[1]


REFUSED = {
    "bomb": (png_bomb(20000, 20000), "bomba.png", "A imagem tem pixels demais (mais de 4096 × 4096)."),
    "too_many_pixels": (png_bomb(5000, 5000), "grande.png", "A imagem tem pixels demais (mais de 4096 × 4096)."),
    "not_an_image": (b"%PDF-1.7 isto nao e uma imagem" * 50, "logo.png",
                     "O arquivo não é uma imagem PNG ou JPEG. Envie o logo em PNG ou JPEG."),
    "svg": (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "logo.svg",
            "O arquivo não é uma imagem PNG ou JPEG."),
    "gif": (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "logo.gif", "O arquivo não é uma imagem PNG ou JPEG."),
    "truncated": (png()[:200], "logo.png", "o arquivo está corrompido ou incompleto"),
    "over_1_mb": (None, "grande.png", "O logo deve ter no máximo 1 MB."),
    "empty": (b"", "vazio.png", "O arquivo está vazio."),
}


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_a_refused_file_keeps_everything_typed_and_saves_nothing(browser_client, config, world, kind):
    data, filename, message = REFUSED[kind]
    if kind == "over_1_mb":
        data = noise_png_over_1mb()
    login(browser_client, config, world.ana)
    before = len(outbox_events(config, "firm.profile_changed"))
    response = _save(browser_client, world.alfa, name="Alfa Contábil Digitado", reply_to="respostas@alfa.com.br",
                     logo=data, filename=filename)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in text_of(page)
    assert 'aria-invalid="true" aria-describedby="e-logo h-logo"' in page
    assert _field_value(page, "name") == "Alfa Contábil Digitado"
    assert _field_value(page, "reply_to") == "respostas@alfa.com.br"
    firm = _firm(config, world.alfa)
    assert (firm.name, firm.reply_to, firm.logo_digest, firm.profile_revision) == ("Contabilidade Alfa", None, None, 1)
    assert _logo_row(config, world.alfa) is None and _audit(config, world.alfa) == []
    assert len(outbox_events(config, "firm.profile_changed")) == before


@pytest.mark.parametrize("reply_to, message", [
    ("nao-e-email", "Informe um e-mail válido para as respostas, ou deixe o campo em branco."),
    ("a@b.com\r\nBcc: todos@exemplo.com", "caracteres de controle"),
])
def test_a_bad_reply_to_keeps_the_rest_and_saves_nothing(browser_client, config, world, reply_to, message):
    login(browser_client, config, world.ana)
    response = _save(browser_client, world.alfa, name="Alfa Contábil", reply_to=reply_to, logo=png())
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in text_of(page) and _field_value(page, "name") == "Alfa Contábil"
    firm = _firm(config, world.alfa)
    assert (firm.name, firm.reply_to, firm.logo_digest) == ("Contabilidade Alfa", None, None)


def test_an_empty_name_is_refused(browser_client, config, world):
    login(browser_client, config, world.ana)
    response = _save(browser_client, world.alfa, name="   ", reply_to="respostas@alfa.com.br")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Informe o nome de exibição do escritório." in text_of(page)
    assert _field_value(page, "reply_to") == "respostas@alfa.com.br"
    assert _firm(config, world.alfa).name == "Contabilidade Alfa"


def test_the_logo_is_replaced_then_removed_and_its_old_address_is_gone(browser_client, config, world):
    login(browser_client, config, world.ana)
    _save(browser_client, world.alfa, name="Contabilidade Alfa", logo=png(color=(200, 0, 0, 255)))
    first = _firm(config, world.alfa).logo_digest
    _save(browser_client, world.alfa, name="Contabilidade Alfa", logo=png(color=(0, 200, 0, 255)))
    second = _firm(config, world.alfa).logo_digest
    assert first != second
    assert browser_client.get(f"/e/{world.alfa.slug}/logo/{first}").status_code == 404
    assert browser_client.get(f"/e/{world.alfa.slug}/logo/{second}").status_code == 200
    page = browser_client.get(_url(world.alfa)).get_data(as_text=True)
    assert "Remover o logo" in page and 'alt="Logo atual de Contabilidade Alfa"' in page

    assert _save(browser_client, world.alfa, name="Contabilidade Alfa", remove_logo=True).status_code == 303
    assert _firm(config, world.alfa).logo_digest is None and _logo_row(config, world.alfa) is None
    assert browser_client.get(f"/e/{world.alfa.slug}/logo/{second}").status_code == 404
    home = browser_client.get(f"/e/{world.alfa.slug}/").get_data(as_text=True)
    assert "<img" not in _header(home) and "Remover o logo" not in browser_client.get(_url(world.alfa)).get_data(
        as_text=True)
    assert [e.details.get("logo") for e in _audit(config, world.alfa)] == ["added", "replaced", "removed"]


def test_each_change_is_audited_and_nothing_changed_is_not(browser_client, config, world):
    login(browser_client, config, world.ana)
    _save(browser_client, world.alfa, name="Alfa Contábil", reply_to="atendimento@alfa.com.br", logo=png())
    _save(browser_client, world.alfa, name="Alfa Contábil", reply_to="atendimento@alfa.com.br")  # the same
    assert "Nada foi alterado." in browser_client.get(_url(world.alfa)).get_data(as_text=True)
    _save(browser_client, world.alfa, name="Alfa Contábil", reply_to="")
    entries = _audit(config, world.alfa)
    assert [e.details["fields"] for e in entries] == [["name", "reply_to", "logo"], ["reply_to"]]
    first = entries[0]
    assert (first.actor_email, first.target_id, first.target_name) == (world.ana.email, world.alfa.id, "Alfa Contábil")
    assert first.details["name"] == {"from": "Contabilidade Alfa", "to": "Alfa Contábil"}
    assert "atendimento@alfa.com.br" not in json.dumps(first.details)
    log = text_of(main_html(browser_client.get(f"/e/{world.alfa.slug}/configuracoes/auditoria").get_data(as_text=True)))
    assert "Perfil do escritório alterado" in log
    # the firm as created (revision 1), then the two saves
    assert [e["payload"]["revision"] for e in outbox_events(config, "firm.profile_changed")
            if e["payload"]["firm_id"] == str(world.alfa.id)] == [1, 2, 3]


def test_the_form_needs_its_csrf_token(browser_client, config, world):
    login(browser_client, config, world.ana)
    response = _save(browser_client, world.alfa, name="Alfa Sem Token", csrf=False)
    assert response.status_code == 400
    assert _firm(config, world.alfa).name == "Contabilidade Alfa"


def test_colaboradores_clients_and_other_firms_get_404(browser_client, config, world):
    login(browser_client, config, world.bruno)  # Beta's admin has a logo of his own
    _save(browser_client, world.beta, name="Beta Contadores", logo=png())
    beta_logo = f"/e/{world.beta.slug}/logo/{_firm(config, world.beta).logo_digest}"
    assert browser_client.get(beta_logo).status_code == 200
    login(browser_client, config, world.ana)
    token = csrf_token(browser_client.get(_url(world.alfa)).get_data(as_text=True))
    for method, path in (("GET", _url(world.beta)), ("POST", _url(world.beta)), ("GET", beta_logo),
                         ("GET", beta_logo.replace(world.beta.slug, world.alfa.slug))):
        response = browser_client.open(path, method=method, data={"csrf_token": token, "name": "Tomado"})
        assert response.status_code == 404, (method, path)
    assert _firm(config, world.beta).name == "Beta Contadores"
    paula = _colaborador(config, world.alfa)
    for person in (paula, world.carlos):
        login(browser_client, config, person)
        assert browser_client.get(_url(world.alfa)).status_code == 404, person.name
        own_token = csrf_token(browser_client.get(f"/e/{world.alfa.slug}/").get_data(as_text=True))
        response = browser_client.post(_url(world.alfa), data={"csrf_token": own_token, "name": "Tomado"})
        assert response.status_code == 404, person.name
    assert _firm(config, world.alfa).name == "Contabilidade Alfa"
    login(browser_client, config, world.carlos)  # a client of Beta sees Beta's header, logo included
    assert browser_client.get(beta_logo).status_code == 200
    assert beta_logo in _header(browser_client.get(f"/e/{world.beta.slug}/").get_data(as_text=True))
    browser_client.delete_cookie("balcao_session")
    anonymous = browser_client.get(beta_logo)
    assert anonymous.status_code == 303 and "/auth/entrar" in anonymous.headers["Location"]


def test_the_page_speaks_english_when_chosen(browser_client, config, world):
    login(browser_client, config, world.ana)
    browser_client.get("/idioma/en?next=/")
    text = text_of(main_html(browser_client.get(_url(world.alfa)).get_data(as_text=True)))
    assert "Display name" in text and "Legal name (razão social)" in text and "Reply-To" in text
    assert "Nome de exibição" not in text
    response = _save(browser_client, world.alfa, name="Alfa", logo=b"not an image", filename="x.png")
    assert "The file is not a PNG or JPEG image." in text_of(response.get_data(as_text=True))


# --------------------------------------------------------------------------- firm.profile_changed (contract)


def _notifier_profile(config, firm_id):
    with database("notifier", config).begin() as s:
        profile = s.get(notifier_models.FirmProfile, firm_id)
        logo = s.get(notifier_models.FirmLogo, profile.logo_digest) if profile and profile.logo_digest else None
        return profile, logo


def test_firm_profile_changed_is_read_and_kept_by_the_notifier(config, world):
    ana = services.Actor(world.ana.identity_id, world.ana.name, world.ana.email)
    from services.users.logos import reencode
    for name, reply_to, logo in (("Alfa Contábil", "atendimento@alfa.com.br", reencode(png())),
                                 ("Alfa Contábil Ltda", None, None)):
        with users_db(config).begin() as s:
            firm = s.get(models.Firm, world.alfa.id)
            assert services.update_firm_profile(s, firm=firm, name=name, reply_to=reply_to, logo=logo,
                                                remove_logo=logo is None, actor=ana)
    *_created, first, second = outbox_events(config, "firm.profile_changed")
    assert first["payload"]["logo"]["media_type"] == "image/png" and second["payload"]["logo"] is None
    # no Razão social, CNPJ or anyone's personal data travels
    assert set(first["payload"]) == {"firm_id", "revision", "name", "slug", "reply_to", "logo"}

    handler = notifier_consumers.HANDLERS["firm.profile_changed"]
    notifier_db = database("notifier", config)

    def consume(envelope):
        wire = json.loads(json.dumps(envelope))  # as it travels
        events.parse_envelope(wire)  # the consumer's schema reads it
        return handle_message(notifier_db, notifier_models.processed, "notifier", handler, wire, config=config)[0]

    assert consume(first) == Outcome.HANDLED
    profile, logo = _notifier_profile(config, world.alfa.id)
    assert (profile.revision, profile.name, profile.reply_to) == (2, "Alfa Contábil", "atendimento@alfa.com.br")
    assert logo.data == reencode(png()).data and logo.media_type == "image/png"
    assert consume(second) == Outcome.HANDLED
    profile, logo = _notifier_profile(config, world.alfa.id)
    assert (profile.revision, profile.name, profile.reply_to, logo) == (3, "Alfa Contábil Ltda", None, None)
    # the first change arriving late (a redelivery under a new message id) changes nothing
    late = {**first, "id": str(uuid.uuid4())}
    assert consume(late) == Outcome.HANDLED
    assert _notifier_profile(config, world.alfa.id)[0].name == "Alfa Contábil Ltda"


def test_the_producer_refuses_a_payload_the_catalogue_does_not_describe():
    good = {"firm_id": str(uuid.uuid4()), "revision": 1, "name": "Alfa", "reply_to": None, "logo": None}
    events.validate_payload("firm.profile_changed", good)
    logo = {"media_type": "image/png", "data": "aGVsbG8=", "sha256": "0" * 64}
    for bad in ({**good, "cnpj": "11222333000181"}, {**good, "revision": 0}, {**good, "reply_to": "x"},
                {**good, "logo": logo},  # the hash is not the data's
                {**good, "logo": {**logo, "media_type": "image/gif"}}):
        with pytest.raises(events.ValidationError):
            events.validate_payload("firm.profile_changed", bad)


# --------------------------------------------------------------------------- the e-mails, through the chain


def test_an_invitation_sent_on_the_firms_behalf_shows_its_name_logo_and_reply_to(config, world):
    """Users → invitations → notifier → a real SMTP server (aiosmtpd): the message as a client gets it."""
    from services.notifier.tests.test_notifier import Collector, smtp_server
    ana = services.Actor(world.ana.identity_id, world.ana.name, world.ana.email)
    from services.users.logos import reencode
    logo = reencode(png())
    with users_db(config).begin() as s:
        services.update_firm_profile(s, firm=s.get(models.Firm, world.alfa.id), name="Alfa Contábil",
                                     reply_to="atendimento@alfa.com.br", logo=logo, actor=ana)
    collector = Collector()
    with smtp_server(collector) as url:
        bus = InProcessBus(dataclasses.replace(config, smtp_url=url, mail_reply_to="operador@balcao.example"))
        bus.pump()  # the profile reaches the notifier; the world's own invitations go out
        with users_db(config).begin() as s:
            services.register_client_user(s, firm=s.get(models.Firm, world.alfa.id), name="Dora Lima",
                                          email="dora@cliente.example", company_ids=[world.alfa_company.id],
                                          access="now")
        bus.pump()
    received = [(e.rcpt_tos, email.message_from_bytes(e.original_content, policy=email.policy.default))
                for e in collector.envelopes]
    [message] = [m for to, m in received if to == ["dora@cliente.example"]]
    assert parseaddr(str(message["From"])) == ("Alfa Contábil via Balcão", config.mail_from)
    assert str(message["Reply-To"]) == "atendimento@alfa.com.br"
    assert str(message["Subject"]) == "Alfa Contábil convidou você para o Portal do Cliente"
    assert message.get_content_type() == "multipart/alternative"
    related = message.get_payload()[1]
    assert related.get_content_type() == "multipart/related"
    html_part, image_part = related.get_payload()
    html = html_part.get_content()
    cid = image_part["Content-ID"].strip("<>")
    img = re.search(r"<img[^>]*>", html).group(0)
    assert f'src="cid:{cid}"' in img and 'alt="Alfa Contábil"' in img and "http" not in img  # nothing fetched
    assert image_part.get_content_type() == "image/png" and image_part.get_content() == logo.data
    assert "inline" in image_part["Content-Disposition"]
    # Beta's invitation (sent in the same run) keeps the operator's Reply-To and has no logo
    [beta] = [m for to, m in received if to == [world.carlos.email] and "Contabilidade Beta" in str(m["Subject"])]
    assert str(beta["Reply-To"]) == "operador@balcao.example"
    assert parseaddr(str(beta["From"]))[0] == "Contabilidade Beta via Balcão"
    assert beta.get_content_type() == "multipart/alternative" and "cid:" not in beta.get_body(("html",)).get_content()


def test_the_users_web_app_does_not_import_pillow(tmp_path):
    """Pillow is imported by the logo upload only (issue 11: what the gunicorn master imports counts
    in every web worker's RSS)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path
    code = ("import json, sys\n"
            "from services.users.app import create_app\n"
            "create_app()\n"
            "print(json.dumps('PIL' in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[3],
                         env={**os.environ, "BALCAO_VAR_DIR": str(tmp_path), "BALCAO_DEMO": "0"})
    assert json.loads(out.stdout.strip().splitlines()[-1]) is False
