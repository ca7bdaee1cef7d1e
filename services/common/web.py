"""The web layer every service shares: app factory, CSRF, translations, security headers,
correlation ids, error pages, health checks and the base page layout."""
from __future__ import annotations

import logging
import re
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    g,
    redirect,
    render_template,
    request,
)
from flask_babel import Babel, get_locale
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError, CSRFProtect
from jinja2 import ChoiceLoader, FileSystemLoader
from marshmallow import ValidationError
from sqlalchemy import text
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from . import dates, messaging, metrics
from .config import Config, load_config
from .contracts import safe_next, session_hash
from .forms import has_control_characters
from .runtime import database, keyring
from .sessions import RENEWAL_PATH, cookie_name, current_identity, renewal_state

COMMON_DIR = Path(__file__).parent
_CID_RE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
csrf = CSRFProtect()

log = logging.getLogger("balcao.web")


def select_locale() -> str:
    """pt-BR unless the person chose English (cookie `balcao_locale=en`)."""
    chosen = request.cookies.get("balcao_locale")
    return chosen if chosen in ("pt_BR", "en") else "pt_BR"


def create_base_app(service: str, import_name: str, *, url_prefix: str, config: Config | None = None) -> Flask:
    config = config or load_config()
    service_dir = Path(str(__import__(import_name, fromlist=["_"]).__file__)).parent
    app = Flask(import_name, static_folder=str(service_dir / "static"),
                static_url_path=f"{url_prefix}/static", template_folder=str(service_dir / "templates"))
    app.jinja_loader = ChoiceLoader([FileSystemLoader(str(service_dir / "templates")),
                                     FileSystemLoader(str(COMMON_DIR / "templates"))])
    app.config.update(
        BALCAO=config,
        BALCAO_SERVICE=service,
        BALCAO_PREFIX=url_prefix,
        SECRET_KEY=config.secret_key,
        # One short-lived browser session (CSRF token, flash messages) shared by the services of
        # the one origin; authentication is NOT in it, it is the signed token issued by auth.
        # __Host- under HTTPS: no sibling subdomain can plant this cookie (CSRF secret fixation).
        SESSION_COOKIE_NAME="__Host-balcao_csrf" if config.https else "balcao_csrf",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.https,
        WTF_CSRF_TIME_LIMIT=None,
        WTF_CSRF_SSL_STRICT=False,
        BABEL_DEFAULT_LOCALE="pt_BR",
        BABEL_TRANSLATION_DIRECTORIES=";".join([str(service_dir / "translations"),
                                                  str(COMMON_DIR / "translations")]),
        MAX_CONTENT_LENGTH=10 * 1024 * 1024,
        # name → check() returning None (ready) or what is wrong: /readyz reports each (documents: storage)
        BALCAO_READY_CHECKS={},
    )
    if config.trusted_proxies > 0:
        # Behind the gateway: the client's address and scheme come from X-Forwarded-For/-Proto,
        # trusting exactly `trusted_proxies` hops (never the Host or prefix headers).
        proxied = ProxyFix(app.wsgi_app, x_for=config.trusted_proxies, x_proto=config.trusted_proxies,
                           x_host=0, x_prefix=0)
        app.wsgi_app = proxied  # type: ignore[method-assign]
    app.extensions["balcao.db"] = database(service, config)
    app.extensions["balcao.keyring"] = keyring(config)

    # Registered BEFORE csrf.init_app, so that it runs before Flask-WTF checks a token.
    @app.before_request
    def _csrf_secret_belongs_to_the_login_session():
        endpoint = request.endpoint or ""
        if endpoint == "static" or endpoint.endswith(".static"):
            return None  # no form posts there; and a page's assets must not race its session cookie
        bind_csrf_to_login_session(_login_session_hash(request.cookies.get(cookie_name(config.https))))
        return None

    @app.after_request
    def _csrf_secret_follows_a_new_login_session(response):
        """A response that sets or clears the session cookie (login, logout, password change…)
        rotates the CSRF secret in the same response."""
        prefix = cookie_name(config.https) + "="
        for header in response.headers.getlist("Set-Cookie"):
            if header.startswith(prefix):
                bind_csrf_to_login_session(_login_session_hash(header[len(prefix):].split(";", 1)[0]))
        return response

    csrf.init_app(app)
    Babel(app, locale_selector=select_locale)
    _request_scoped_template_gettext(app)
    dates.register(app)  # `datahora` and `data`: Brasília time, dd/mm/aaaa, on every service's pages

    common_bp = Blueprint("common", __name__, static_folder=str(COMMON_DIR / "static"),
                          static_url_path="/_common")
    app.register_blueprint(common_bp, url_prefix=url_prefix)

    @app.before_request
    def _correlation_id():
        incoming = request.headers.get("X-Request-ID", "")
        g.correlation_id = incoming if _CID_RE.match(incoming) else uuid.uuid4().hex
        g._started = time.perf_counter()
        g._cid_token = messaging.correlation_id_var.set(g.correlation_id)

    # Endpoints never sent through session renewal (a service adds its own, e.g. auth's login
    # and renewal pages, to app.config["BALCAO_RENEWAL_EXEMPT"]).
    app.config["BALCAO_RENEWAL_EXEMPT"] = {"healthz", "readyz", "choose_locale"}

    @app.before_request
    def _session_renewal():
        """A short-lived session token past its `exp` (or, on GET, past half its lifetime) goes
        to auth for renewal; a form posted with an expired token is not lost silently."""
        endpoint = request.endpoint
        if (endpoint is None or endpoint == "static" or endpoint.endswith(".static")
                or endpoint in app.config["BALCAO_RENEWAL_EXEMPT"]):
            return None
        state = renewal_state()
        if state is None:
            return None
        if request.method in ("GET", "HEAD"):
            here = request.script_root + request.full_path.rstrip("?") if request.query_string else \
                request.script_root + request.path
            return redirect(f"{RENEWAL_PATH}?next={quote(here, safe='/')}", code=303)
        if state == "expired":
            renew = f"{RENEWAL_PATH}?next={quote(_same_origin_referer_path(config), safe='/')}"
            return render_template("errors/session_renewal.html", renew_url=renew), 401
        return None

    app.teardown_appcontext(close_db_session)

    @app.teardown_request
    def _reset_cid(_exc):
        token = g.pop("_cid_token", None)
        if token is not None:
            messaging.correlation_id_var.reset(token)

    @app.after_request
    def _headers(response):
        started = g.get("_started")
        if started is not None:
            # The endpoint name, never the raw path: ids and tokens stay out of the labels.
            metrics.observe_request(service, request.method, request.endpoint or "unmatched",
                                    response.status_code, time.perf_counter() - started)
        response.headers["X-Request-ID"] = g.get("correlation_id", "")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if config.https:
            response.headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
        if request.endpoint and not request.endpoint.endswith("static"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.context_processor
    def _globals():
        return {"current_identity": current_identity(), "service_name": service,
                "public_url": config.public_url, "get_locale": get_locale}

    @app.before_request
    def _refuse_control_characters_in_the_path():
        """A path segment (a slug, an id, a token) with a control character names nothing: 404
        before any view sends it to a database (PostgreSQL refuses NUL in text with an error)."""
        if any(isinstance(v, str) and has_control_characters(v) for v in (request.view_args or {}).values()):
            abort(404)

    @app.errorhandler(404)
    def _not_found(_e):
        return render_template("errors/404.html"), 404

    @app.errorhandler(HTTPException)
    def _http_error(e: HTTPException):
        """Every other HTTP error (400, 401, 405, 413, 429, …) on our layout, in the person's
        language, keeping the status and its headers (Allow, Retry-After, …)."""
        code = e.code or 500
        heading, message = http_error_text(code, app.config.get("MAX_CONTENT_LENGTH"))
        headers = [(k, v) for k, v in e.get_headers() if k.lower() != "content-type"]
        return render_template("errors/http.html", code=code, heading=heading, message=message), code, headers

    @app.errorhandler(ValidationError)
    def _invalid_input(e: ValidationError):
        """Input a view parsed without catching the schema's refusal: a 422 page, nothing done."""
        log.info("unhandled input validation error on %s: %s", request.endpoint, sorted(
            e.messages) if isinstance(e.messages, dict) else "schema")
        heading, message = http_error_text(422, None)
        return render_template("errors/http.html", code=422, heading=heading, message=message), 422

    @app.errorhandler(CSRFError)
    def _csrf(_e):
        return render_template("errors/csrf.html"), 400

    @app.errorhandler(500)
    def _server_error(_e):
        return render_template("errors/500.html"), 500

    @app.get(f"{url_prefix}/idioma/<locale>")
    def choose_locale(locale):
        """The footer's language switch: pt-BR (default) or English, remembered in a cookie."""
        if locale not in ("pt_BR", "en"):
            abort(404)
        response = redirect(safe_next(request.args.get("next"), "/"), code=303)
        response.set_cookie("balcao_locale", locale, max_age=365 * 24 * 3600, httponly=True,
                            samesite="Lax", secure=config.https, path="/")
        return response

    @app.get(f"{url_prefix}/healthz")
    def healthz():
        return {"status": "ok", "service": service}

    @app.get(f"{url_prefix}/readyz")
    def readyz():
        """Ready = this service's database answers AND the broker accepts a connection (the broker
        check is cached a few seconds: load balancers poll often) AND e-mail has somewhere to go
        (BALCAO_SMTP_URL, or the embedded mode's dev mailbox)."""
        problems = {}
        try:
            with app.extensions["balcao.db"].engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # reported, not swallowed: the operator sees why
            problems["database"] = str(exc)[:200]
        broker = messaging.broker_problem(config.broker_url)
        if broker:
            problems["broker"] = broker
        if config.mail_problem:  # e.g. a web started without BALCAO_SMTP_URL other than by `balcao web`
            problems["email"] = config.mail_problem
        for name, check in app.config["BALCAO_READY_CHECKS"].items():  # a service's own dependencies
            problem = check()
            if problem:
                problems[name] = problem
        if problems:
            log.warning("%s not ready: %s", service, ", ".join(sorted(problems)))
            return {"status": "unavailable", "service": service, **problems}, 503
        return {"status": "ready", "service": service, "database": "ok", "broker": "ok"}

    # Prometheus metrics are NOT served here: they have a port of their own (metrics.serve,
    # BALCAO_METRICS_BIND, loopback by default), which the gateway never routes.

    return app




def request_translations():
    """The request's catalogue, looked up once per request: Flask-Babel looks up the context, the
    locale and its cache again for every string a template translates (a list page has dozens)."""
    from flask import has_request_context
    from flask_babel import get_translations
    if not has_request_context():
        return get_translations()
    cached = g.get("_balcao_translations")
    if cached is None:
        cached = g._balcao_translations = get_translations()
    return cached


def _request_scoped_template_gettext(app) -> None:
    """Templates' `_()` / `ngettext()` as Flask-Babel installs them, through `request_translations`."""
    app.jinja_env.install_gettext_callables(
        gettext=lambda s: request_translations().ugettext(s),
        ngettext=lambda s, p, n: request_translations().ungettext(s, p, n),
        newstyle=True,
        pgettext=lambda c, s: request_translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: request_translations().unpgettext(c, s, p, n))


# --------------------------------------------------------------------------- CSRF bound to the login session
# Flask-WTF keeps its CSRF secret in the `balcao_csrf` browser session that every service shares.
# A secret made before login (or for another login) must not be accepted after it: the browser
# session remembers the SHA-256 of the login session's sid the secret was made for ("" for no
# login), and a request under another login session drops the secret, so the next form gets a
# new one. Renewing the token keeps the sid, so forms already open keep working.
CSRF_BINDING_KEY = "csrf_login_session"


def _login_session_hash(token: str | None) -> str:
    """session_hash of the sid of an authentic session token (expired or not), else ""."""
    from .sessions import authentic_session_claims
    claims = authentic_session_claims(token)
    sid = claims.get("sid") if claims else None
    return session_hash(sid) if isinstance(sid, str) and sid else ""


def bind_csrf_to_login_session(login_session: str) -> None:
    """Make the browser session's CSRF secret belong to `login_session` (a session_hash, or ""
    for none): a secret made for another one is dropped (Flask-WTF makes a new one when a form
    needs it). Nothing changes, and no cookie is sent, when it already belongs there."""
    from flask import current_app, session
    if session.get(CSRF_BINDING_KEY, "") == login_session:
        return
    session.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)
    if login_session:
        session[CSRF_BINDING_KEY] = login_session
    else:
        session.pop(CSRF_BINDING_KEY, None)


def _megabytes(limit: int) -> str:
    value = limit / (1024 * 1024)
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}".replace(".", ",")


def http_error_text(code: int, max_content_length: int | None) -> tuple[str, str]:
    """(heading, message) of an error page, translated when rendered."""
    texts = {
        400: (_l("Pedido inválido"),
              _l("Não entendemos o que o navegador enviou. Volte, recarregue a página e tente novamente.")),
        401: (_l("Entre novamente"),
              _l("Sua sessão terminou ou não é mais válida. Entre novamente para continuar.")),
        403: (_l("Acesso negado"), _l("Você não tem permissão para fazer isso.")),
        404: (_l("Página não encontrada"), _l("O endereço não existe ou você não tem acesso a ele.")),
        405: (_l("Ação não permitida"),
              _l("Este endereço não aceita esse tipo de pedido. Use os botões e links das páginas.")),
        408: (_l("Tempo esgotado"), _l("O envio demorou demais. Tente novamente.")),
        409: (_l("Conflito"), _l("Os dados mudaram enquanto você trabalhava. Recarregue a página e tente novamente.")),
        410: (_l("Página removida"), _l("Este endereço não existe mais.")),
        413: (_l("Envio grande demais"),
              _l("O envio passa do limite de %(limit)s MB. Envie um arquivo menor (divida a planilha, se "
                 "preciso).", limit=_megabytes(max_content_length or 10 * 1024 * 1024))),
        414: (_l("Endereço longo demais"), _l("O endereço pedido é longo demais. Volte e tente novamente.")),
        415: (_l("Formato não aceito"), _l("O formato enviado não é aceito aqui.")),
        422: (_l("Dados inválidos"), _l("Alguns dados enviados não são válidos. Volte, corrija e envie de novo.")),
        429: (_l("Muitas tentativas"), _l("Muitas tentativas em pouco tempo. Aguarde um minuto e tente novamente.")),
        431: (_l("Pedido grande demais"),
              _l("O navegador enviou cabeçalhos grandes demais. Limpe os cookies deste site e tente novamente.")),
        503: (_l("Serviço indisponível"),
              _l("O serviço está temporariamente indisponível. Tente novamente em instantes.")),
    }
    if code in texts:
        return texts[code]
    if code >= 500:
        return _l("Algo deu errado"), _l("Não foi possível concluir a operação. Nada foi perdido; "
                                         "tente novamente em instantes.")
    return _l("Não foi possível atender ao pedido"), _l("Volte, recarregue a página e tente novamente.")


def _same_origin_referer_path(config: Config) -> str:
    """The Referer's path (and query) when it is this origin's own page, else "/"."""
    referer = request.headers.get("Referer", "")
    if not referer:
        return "/"
    parts = urlsplit(referer)
    origins = {request.host_url.rstrip("/"), config.public_url.rstrip("/")}
    if f"{parts.scheme}://{parts.netloc}" not in origins:
        return "/"
    return safe_next((parts.path or "/") + (f"?{parts.query}" if parts.query else ""), "/") or "/"


def db_session():
    """A request-scoped session (reads). Writes use `db().begin()` around a service function."""
    from flask import current_app
    if "balcao_db_session" not in g:
        g.balcao_db_session = current_app.extensions["balcao.db"].session()
    return g.balcao_db_session


def db():
    from flask import current_app
    return current_app.extensions["balcao.db"]


def close_db_session(_exc=None):
    s = g.pop("balcao_db_session", None)
    if s is not None:
        s.close()
