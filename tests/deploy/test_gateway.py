"""The nginx gateway routes exactly the prefixes of services.common.gateway.PREFIXES, without
rewriting paths, and the rendered configuration is accepted by the real nginx."""
from __future__ import annotations

import re
import subprocess

import pytest

from deploy.stack import TEMPLATE, nginx_binary, render_nginx_conf, render_server_block
from services.common.config import SERVICES
from services.common.gateway import PREFIXES

UPSTREAMS = {svc: f"127.0.0.1:{9100 + i}" for i, svc in enumerate(SERVICES)}


def _blocks(text: str, keyword: str) -> dict[str, str]:
    """`keyword <arg> {` ... `}` blocks of an nginx config (closing brace on its own line)."""
    return {m.group(1): m.group(2)
            for m in re.finditer(rf"^\s*{keyword}\s+([^{{\n]+?)\s*\{{(.*?)^\s*\}}", text, re.M | re.S)}


def _routes(text: str) -> dict[str, str]:
    """location → upstream name, from the `proxy_pass` of each location."""
    routes = {}
    for loc, body in _blocks(text, "location").items():
        if loc.startswith("@"):  # named locations: nginx's own error pages, never a route
            continue
        passes = re.findall(r"proxy_pass\s+(\S+);", body)
        assert len(passes) == 1, loc
        match = re.fullmatch(r"http://(balcao_\w+)", passes[0])
        assert match, f"{loc}: proxy_pass {passes[0]} has a URI part (that would rewrite the path)"
        routes[loc] = match.group(1)
    return routes


def _strip_comments(text: str) -> str:
    return re.sub(r"#[^\n]*", "", text)


@pytest.fixture(scope="module")
def template() -> str:
    return _strip_comments(TEMPLATE.read_text())


def test_routes_exactly_the_prefixes_of_the_routing_table(template):
    expected = {}
    for svc, prefix in PREFIXES.items():
        if prefix:
            expected[f"= {prefix}"] = f"balcao_{svc}"
            expected[f"^~ {prefix}/"] = f"balcao_{svc}"
        else:
            expected["/"] = f"balcao_{svc}"
    assert _routes(template) == expected


def test_each_upstream_address_comes_from_its_variable(template):
    upstreams = _blocks(template, "upstream")
    assert set(upstreams) == {f"balcao_{svc}" for svc in SERVICES}
    for svc in SERVICES:
        assert re.search(rf"server\s+\${{{svc.upper()}_UPSTREAM}};", upstreams[f"balcao_{svc}"])
    assert re.search(r"listen\s+\$\{GATEWAY_PORT\};", template)


def test_only_the_deployment_variables_are_substituted(template):
    """envsubst (nginx image) and string.Template replace ${NAME}; nginx's own $vars stay."""
    assert set(re.findall(r"\$\{(\w+)\}", template)) == {
        "GATEWAY_PORT", "AUTH_UPSTREAM", "USERS_UPSTREAM", "INVITATIONS_UPSTREAM", "NOTIFIER_UPSTREAM",
        "DOCUMENTS_UPSTREAM"}
    rendered = render_server_block(gateway_port=8080, upstreams=UPSTREAMS)
    assert "${" not in rendered
    for var in ("$http_host", "$proxy_add_x_forwarded_for", "$scheme", "$request_id", "$http_x_request_id"):
        assert var in rendered
    assert "server 127.0.0.1:9100;" in rendered and "listen 8080;" in rendered


def test_forwarded_headers_body_limit_and_timeouts(template):
    for header in ("Host", "X-Forwarded-For", "X-Forwarded-Proto", "X-Request-ID"):
        assert re.search(rf"proxy_set_header\s+{header}\s+\S+;", template), header
    # the caller's request id is kept, else nginx makes one
    assert re.search(r"map\s+\$http_x_request_id\s+\$balcao_request_id", template)
    assert re.search(r'""\s+\$request_id;', template)
    assert re.search(r"client_max_body_size\s+10m;", template)
    for directive in ("proxy_connect_timeout", "proxy_read_timeout", "proxy_send_timeout"):
        assert re.search(rf"{directive}\s+\d+s;", template), directive
    # headers are set once, at server level: a location with its own proxy_set_header would drop them
    for loc, body in _blocks(template, "location").items():
        assert "proxy_set_header" not in body, loc


def test_the_rendered_configuration_passes_nginx_t(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "nginx").mkdir()
    temp = tmp_path / "temp"
    temp.mkdir()
    conf = render_nginx_conf(server_block=render_server_block(gateway_port=18080, upstreams=UPSTREAMS),
                             workdir=tmp_path, temp_dir=temp)
    path = tmp_path / "nginx.conf"
    path.write_text(conf)
    result = subprocess.run([nginx_binary(), "-t", "-p", str(tmp_path), "-e", str(tmp_path / "logs" / "error.log"),
                             "-c", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert str(tmp_path / "nginx" / "nginx.pid") in conf and "daemon off;" in conf


def test_nginx_t_rejects_a_broken_render(tmp_path):
    """Control for the test above: nginx -t does check what we render."""
    (tmp_path / "logs").mkdir()
    (tmp_path / "nginx").mkdir()
    conf = render_nginx_conf(server_block="server { listen 18081; location / { proxy_pass; } }",
                             workdir=tmp_path, temp_dir=tmp_path)
    (tmp_path / "nginx.conf").write_text(conf)
    result = subprocess.run([nginx_binary(), "-t", "-p", str(tmp_path), "-e", str(tmp_path / "logs" / "e.log"),
                             "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "proxy_pass" in result.stderr


# --------------------------------------------------------------------------- the real nginx in front

@pytest.fixture(scope="module")
def nginx_gateway(balcao_config, tmp_path_factory):
    """nginx with the rendered template in front of the four apps (one werkzeug server, SQLite,
    no broker needed); the notifier's upstream is a port nobody listens on."""
    import os
    import threading
    import time
    import urllib.request

    from werkzeug.serving import make_server

    from deploy.stack import free_ports
    from testsupport import build_gateway

    workdir = tmp_path_factory.mktemp("nginx")
    for sub in ("logs", "nginx", "temp"):
        (workdir / sub).mkdir()
    if os.geteuid() == 0:  # nginx's workers run as "nobody"
        import pwd
        nobody = pwd.getpwnam("nobody")
        os.chown(workdir / "temp", nobody.pw_uid, nobody.pw_gid)
    app_port, gateway_port, dead_port = free_ports(3)
    dispatcher, _apps = build_gateway(balcao_config)
    server = make_server("127.0.0.1", app_port, dispatcher, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    upstreams = {svc: f"127.0.0.1:{app_port}" for svc in SERVICES}
    upstreams["notifier"] = f"127.0.0.1:{dead_port}"
    conf = render_nginx_conf(server_block=render_server_block(gateway_port=gateway_port, upstreams=upstreams),
                             workdir=workdir, temp_dir=workdir / "temp")
    (workdir / "nginx.conf").write_text(conf)
    proc = subprocess.Popen([nginx_binary(), "-p", str(workdir / "nginx"), "-e", str(workdir / "logs" / "e.log"),
                             "-c", str(workdir / "nginx.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{gateway_port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(url + "/auth/healthz", timeout=2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"nginx did not start: {proc.stderr.read() if proc.poll() is not None else ''}") from None
            time.sleep(0.1)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        server.shutdown()


def _fetch(url: str, *, data: bytes | None = None, headers: dict | None = None):
    import urllib.error
    import urllib.request
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=20) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read().decode()


def test_no_metrics_through_the_real_gateway(nginx_gateway):
    for path in ("/metrics", "/auth/metrics", "/convite/metrics", "/notificacoes/metrics", "/e/x/metrics"):
        status, _, body = _fetch(nginx_gateway + path)
        assert status == 404 and "balcao_" not in body, path
    assert _fetch(nginx_gateway + "/convite/healthz")[0] == 200  # the same upstream answers otherwise


@pytest.mark.parametrize("locale,expected", [
    (None, "O envio passa do limite de 10 MB. Envie um arquivo menor"),
    ("en", "The upload is over the 10 MB limit. Send a smaller file"),
])
def test_an_upload_over_the_limit_gets_the_gateways_page_in_the_persons_language(nginx_gateway, locale,
                                                                                expected):
    headers = {"Content-Type": "application/octet-stream"}
    if locale:
        headers["Cookie"] = f"balcao_locale={locale}"
    status, response_headers, body = _fetch(nginx_gateway + "/e/alfa/configuracoes/usuarios-de-clientes/importar",
                                             data=b"x" * (11 * 1024 * 1024), headers=headers)
    assert status == 413
    assert response_headers["Content-Type"] == "text/html; charset=utf-8"
    assert expected in body and "nginx" not in body.lower()


def test_a_service_that_is_down_gets_a_pt_br_page(nginx_gateway):
    status, _, body = _fetch(nginx_gateway + "/notificacoes/healthz")
    assert status == 502  # nginx keeps its own status (connection refused), with our page
    assert "Serviço indisponível" in body and "nginx" not in body.lower()
