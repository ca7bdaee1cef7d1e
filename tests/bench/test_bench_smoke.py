"""Smoke test of the benchmark code (bench/): the pure statistics and budget verdicts, the bulk
seeding (rows the users service reads exactly like its own), and the in-process SQL count the
bench reports. It times nothing; it runs on the shared `config` fixture (SQLite or PostgreSQL)."""
from __future__ import annotations

import math

import pytest
from stdnum.br import cnpj as cnpj_mod
from stdnum.br import cpf as cpf_mod

from bench import runner, seed
from bench.stats import Row, percentile, render_table, summarize, verdict, windows_rate
from services.common.runtime import database
from services.users import queries as users_queries
from services.users import services as users_services
from services.users.models import ClientUser, Firm


def test_percentile_interpolates_and_summary_reports_median_and_p99():
    values = list(range(1, 101))  # 1..100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([7], 99) == 7
    assert math.isnan(percentile([], 50))
    s = summarize([3, 1, 2])
    assert (s["n"], s["median"], s["min"], s["max"]) == (3, 2, 1, 3)


def test_verdicts_follow_the_issue_budgets():
    assert verdict("login_ratio", 0.95) == "met"
    assert verdict("login_ratio", 0.89) == "missed"
    assert verdict("list_p50_ms", 15.0) == "met"
    assert verdict("list_p50_ms", 15.1) == "missed"
    assert verdict("list_ratio_100k_1k", 1.31) == "missed"
    assert verdict("list_sql_constant", False) == "missed"
    assert verdict("embedded_rss_mb", 251.0) == "missed"
    assert verdict("home_p50_ms", float("nan")) == "n/a"


def test_rates_per_window_only_count_whole_windows():
    stamps = [10.1, 10.2, 10.9, 11.5, 12.2, 12.3, 12.4, 13.7]
    assert windows_rate(stamps, start=10.0, end=13.5, window=1.0) == [3.0, 1.0, 3.0]


def test_table_lists_every_figure_with_its_verdict():
    results = {"machine": {"cores": 2},
               "argon2_raw": {"per_core": summarize([40, 41]), "params": {"time_cost": 2, "memory_cost_kib": 19456,
                                                                          "parallelism": 1}},
               "login": {"per_core": summarize([30, 31]), "latency_ms": summarize([50, 60]), "threads": 4,
                         "ratio_to_raw": 0.75},
               "client_home": {"home_ms": summarize([5, 6]), "switch_and_home_ms": summarize([9, 10]),
                               "sql_statements": 4}}
    text = render_table(runner.rows_of(results), title="t")
    ratio_line = next(line for line in text.splitlines() if "login rate / raw" in line)
    assert "0.75" in ratio_line and "missed" in ratio_line
    home_line = next(line for line in text.splitlines() if "client home" in line)
    assert "met" in home_line
    assert render_table([Row("a", "1")], title="x").splitlines()[2].startswith("| figure")


def test_generated_documents_are_valid():
    assert all(cpf_mod.is_valid(seed.cpf_for(i)) for i in range(0, 3000, 7))
    assert all(cnpj_mod.is_valid(seed.cnpj_for(i)) for i in (1, 2, 999, 10_000))


def test_bulk_rows_read_like_the_service_wrote_them(config):
    firm = seed.create_firm(config, n=1, name="Contabilidade Grande", admin_identity_id="00000000-0000-4000-8000-000000000001",
                            admin_email="admin@bench.example")
    companies = seed.create_companies(config, firm_id=firm["id"], count=3, start=50)
    seed.bulk_client_users(config, firm_id=firm["id"], count=120, start=0, company_ids=companies)
    others = seed.bulk_firms(config, count=5, start=1000)
    seed.bulk_client_users(config, firm_id=others[0], count=7, start=10_000)
    with database("users", config).begin() as session:
        f = session.get(Firm, firm["id"])
        page = users_queries.client_users_page(session, firm=f, page=3)
        assert len(page.items) == 20 and not page.has_next  # 120 = 50 + 50 + 20, other firms not mixed in
        cu = page.items[0]
        assert cu.status == "not_invited" and cu.email == cu.email.strip().lower() and len(cu.companies) == 1
        # the service's own validation accepts every bulk row's contact data as it is stored
        for row in session.query(ClientUser).filter(ClientUser.firm_id == f.id).limit(40):
            cleaned = users_services._clean_contact(name=row.name, email=row.email, cpf=row.cpf, phone=row.phone)
            assert (cleaned["name"], cleaned["email"], cleaned["cpf"]) == (row.name, row.email, row.cpf)
        # bulk firms are real firms: their administrator is recognized as such
        other = session.get(Firm, others[0])
    admin_id = _staff_identity(config, others[0])
    with database("users", config).begin() as session:
        assert users_queries.firm_for(session, identity_id=admin_id, slug=other.slug)[1] == "admin"


def _staff_identity(config, firm_id):
    from services.users.models import StaffMember
    with database("users", config).begin() as session:
        return session.query(StaffMember.identity_id).filter(StaffMember.firm_id == firm_id).scalar()


def test_sql_statements_per_list_request_are_counted_in_process(config):
    firm = seed.create_firm(config, n=3, name="Contabilidade Contada", admin_identity_id="00000000-0000-4000-8000-000000000002",
                            admin_email="staff@bench.example")
    staff = runner.InProcessUsers(config, identity_id="00000000-0000-4000-8000-000000000002",
                                  email="staff@bench.example", name="Staff")
    path = runner.list_paths(firm["slug"])["page 1"]
    seed.bulk_client_users(config, firm_id=firm["id"], count=10, start=0)
    small = staff.statements(path)
    seed.bulk_client_users(config, firm_id=firm["id"], count=140, start=10)
    assert small >= 2  # the session's firm check and the page itself at least
    assert staff.statements(path) == small
    with pytest.raises(RuntimeError):
        staff.statements(runner.list_paths("not-a-firm")["page 1"])  # 404 is reported, not counted


def test_bulk_companies_read_like_the_service_wrote_them(config):
    firm = seed.create_firm(config, n=4, name="Contabilidade Empresas", admin_identity_id="00000000-0000-4000-8000-000000000004",
                            admin_email="admin@empresas.example")
    first = seed.create_companies(config, firm_id=firm["id"], count=3, start=5000)
    more = seed.bulk_companies(config, firm_id=firm["id"], count=60, start=5003)
    with database("users", config).begin() as session:
        f = session.get(Firm, firm["id"])
        page = users_queries.companies_page(session, firm=f, page=2)
        assert len(page.items) == 13 and not page.has_next  # 63 = 50 + 13, all active
        for company in users_queries.companies_of(session, firm=f):
            assert company.id in set(first + more)
            cleaned = users_services._clean_company(name=company.name, trade_name=company.trade_name,
                                                    code=company.code, cnpj=company.cnpj)
            assert {k: getattr(company, k) for k in cleaned} == cleaned  # stored exactly as create_company would
        found = users_queries.companies_page(session, firm=f, q=runner.EMPRESAS_KINDS["search CNPJ"]["q"])
        assert [c.id for c in found.items] == [first[0]]  # the formatted CNPJ the bench searches finds one


def test_client_users_per_company_as_the_firm_grows(config):
    firm = seed.create_firm(config, n=5, name="Contabilidade Crescente", admin_identity_id="00000000-0000-4000-8000-000000000005",
                            admin_email="admin@crescente.example")
    companies = seed.create_companies(config, firm_id=firm["id"], count=2, start=5000)
    seed.bulk_client_users(config, firm_id=firm["id"], count=40, start=0, company_ids=companies, per_company=20)
    companies += seed.bulk_companies(config, firm_id=firm["id"], count=3, start=5002)
    seed.bulk_client_users(config, firm_id=firm["id"], count=60, start=40, company_ids=companies, per_company=20)
    with database("users", config).begin() as session:
        f = session.get(Firm, firm["id"])
        for company_id in companies:
            assert users_queries.company_client_user_count(session, firm=f, company_id=company_id) == 20


def _replayed(conn, captured) -> dict[str, int]:
    """{first two words of a statement's select list: rows} of a request's statements replayed."""
    heads = [" ".join(statement.split()[:2]).rstrip(",") for statement, _params in captured]
    return dict(zip(heads, runner.replay(conn, captured), strict=True))


def test_the_floor_replays_the_statements_a_colaboradors_page_sends(config):
    from services.users import pii
    pii.configure(config)  # as the bench does: the bulk seed encrypts CPFs with the key the app reads
    colab = "00000000-0000-4000-8000-000000000007"
    firm = seed.create_firm(config, n=6, name="Contabilidade Carteira", admin_identity_id="00000000-0000-4000-8000-000000000006",
                            admin_email="admin@carteira.example")
    companies = seed.create_companies(config, firm_id=firm["id"], count=4, start=5000)
    seed.bulk_client_users(config, firm_id=firm["id"], count=40, start=0, company_ids=companies, per_company=10)
    seed.add_colaborador(config, firm_id=firm["id"], identity_id=colab, name="Colaboradora", email="c@carteira.example",
                         company_ids=companies[:2])
    in_proc = runner.InProcessUsers(config, identity_id=colab, email="c@carteira.example", name="Colaboradora")
    path = runner.list_paths(firm["slug"])["page 1"]
    captured = in_proc.capture(path)
    assert len(captured) == in_proc.statements(path) >= 3
    pinged = in_proc.capture(path, pings=True)  # PostgreSQL's pool pings at the request's checkout
    pings = 1 if getattr(database("users", config).engine.pool, "_pre_ping", False) else 0
    assert [st for st, _p in pinged].count("SELECT 1") == pings and len(pinged) == len(captured) + pings
    conn = runner.raw_connection(config.database_url("users"))
    try:
        rows = _replayed(conn, captured)
        # the page's users: the carteira's 20, not the firm's 40
        assert rows["SELECT client_users.id"] == 20
        search = runner.empresas_paths(firm["slug"])["search CNPJ"]
        rows = _replayed(conn, in_proc.capture(search.split("?")[0], runner.EMPRESAS_KINDS["search CNPJ"]))
        assert rows["SELECT companies.id"] == 1  # the company with that CNPJ (in the carteira)
    finally:
        conn.close()


def test_floor_figures_ratios_and_their_rows():
    timings = {"page 1": {"page": [0.010, 0.012, 0.011], "floor": [0.005, 0.006, 0.004]},
               "search": {"page": [0.020, 0.022, 0.021], "floor": [0.008, 0.007, 0.009]}}
    small = runner.floor_figure(timings, {"page 1": 4, "search": 4})
    assert small["floor_ratio"] == pytest.approx(16.0 / 6.5)  # medians of all kinds together: 16 ms / 6.5 ms
    assert small["by_kind"]["page 1"]["floor_ratio"] == pytest.approx(11 / 5)
    slower = {k: {"page": [t * 1.5 for t in d["page"]], "floor": d["floor"]} for k, d in timings.items()}
    large = runner.floor_figure(slower, {"page 1": 4, "search": 5})
    summary = runner.sized_summary({"50": small, "5000": large})
    assert summary["p50_ratio"] == pytest.approx(1.5) and summary["sql_constant"] is False
    results = {"machine": {"cores": 2}, "params": {"carteira": 50}, "empresas": {"50": small, "5000": large},
               "empresas_summary": summary,
               "staff_home": {"1000": {"Administrador": {"ms": summarize([7, 9]), "sql_statements": 6}}}}
    text = render_table(runner.rows_of(results), title="t")
    assert "Administrador p50 8.0, SQL 6" in text
    assert "Empresas list, 5,000 companies" in text and "(floor 6.5)" in text
    ratio = next(line for line in text.splitlines() if "Empresas list p50 5,000 / 50" in line)
    assert "1.50" in ratio and "missed" in ratio
    assert "missed" in next(line for line in text.splitlines() if "constant across sizes" in line)
    assert verdict("floor_ratio", 2.0) == "met" and verdict("floor_ratio", 2.01) == "missed"
