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
        "GATEWAY_PORT", "AUTH_UPSTREAM", "USERS_UPSTREAM", "INVITATIONS_UPSTREAM", "NOTIFIER_UPSTREAM"}
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
