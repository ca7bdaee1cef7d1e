"""Security notices render auth's ISO-8601 UTC times and MFA change codes in pt-BR."""
from services.notifier.rendering import br_datetime, mfa_change, render_email

LINK = "http://127.0.0.1:8000/auth/esqueci-senha"


def test_iso_utc_moment_in_brasilia_time():
    assert br_datetime("2026-11-28T17:05:00+00:00") == "28/11/2026 às 14:05 (horário de Brasília)"
    assert br_datetime("2026-01-02T02:30:00Z") == "01/01/2026 às 23:30 (horário de Brasília)"
    assert br_datetime("28/11/2026 15:30") == "28/11/2026 15:30"  # already formatted: as given


def test_account_locked_password_changed_and_firm_linked_show_brasilia_time():
    moment = "2026-11-28T17:05:00+00:00"
    expected = "28/11/2026 às 14:05 (horário de Brasília)"
    for template, context in [("account_locked", {"locked_until": moment}),
                              ("password_changed", {"changed_at": moment}),
                              ("firm_linked", {"linked_at": moment, "firm_name": "Contabilidade Beta"})]:
        _subject, text, html = render_email(template, {"name": "Carlos", "link": LINK, **context})
        assert expected in text and expected in html, template
        assert "2026-11-28T17" not in text and "2026-11-28T17" not in html


def test_mfa_change_in_portuguese():
    assert mfa_change("enabled") == "ativada" and mfa_change("disabled") == "desativada"
    _s, text, html = render_email("mfa_changed", {"name": "Ana", "change": "enabled", "link": LINK})
    assert "foi ativada." in text and "<strong>ativada</strong>" in html and "enabled" not in text
    _s, text, _h = render_email("mfa_changed", {"name": "Ana", "change": "disabled", "link": LINK})
    assert "foi desativada." in text
    _s, text, _h = render_email("mfa_changed", {"name": "Ana", "change": "recovery_codes_regenerated",
                                                "link": LINK})
    assert "novos códigos de recuperação" in text


def test_a_lock_of_one_device_says_the_owners_devices_still_get_in():
    """auth locks the device/address the wrong passwords came from before it locks the account for
    everyone: the notice must not tell the owner they cannot sign in when they can."""
    moment = "2026-11-28T17:05:00+00:00"
    _s, client_text, client_html = render_email("account_locked", {"name": "Carlos", "link": LINK,
                                                                   "locked_until": moment, "scope": "client"})
    assert "a partir do aparelho ou endereço" in client_text and "continua normal" in client_html
    assert "Você poderá entrar de novo" not in client_text
    for context in ({"scope": "account"}, {}):  # an older producer sends no scope: the whole account
        _s, text, _h = render_email("account_locked", {"name": "Carlos", "link": LINK, "locked_until": moment,
                                                       **context})
        assert "Você poderá entrar de novo a partir de 28/11/2026 às 14:05" in text
        assert "continua normal" not in text
