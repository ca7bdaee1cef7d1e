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
