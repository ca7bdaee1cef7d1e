"""Smoke test of the benchmark code (bench/): the pure statistics and budget verdicts, the bulk
seeding (rows the users service reads exactly like its own), and the in-process SQL count the
bench reports. It times nothing; it runs on the shared `config` fixture (SQLite or PostgreSQL)."""
from __future__ import annotations

import math
import uuid
from datetime import datetime
from decimal import Decimal

import pytest
from stdnum.br import cnpj as cnpj_mod
from stdnum.br import cpf as cpf_mod

from bench import documents, runner, seed, stats
from bench.stats import Row, load_verdict, percentile, render_table, summarize, verdict, windows_rate
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


QUIET = {"samples": 10, "cores": 2, "load1_start": 3.1, "load1_end": 3.4, "load1_max": 3.5, "other_load": 0.4,
         "own_load": 2.9, "other_cpu_cores": 0.2}
BUSY = {**QUIET, "other_load": 2.6, "other_cpu_cores": 1.1}


def test_a_figure_is_inconclusive_when_the_machine_was_busy_with_others():
    # the bench's own load (3.5 on 2 cores: its clients, the stack) is the product under test;
    # only the load the bench did not make decides
    assert not stats.machine_busy(QUIET, 2)
    assert stats.machine_busy(BUSY, 2)
    assert stats.machine_busy({**QUIET, "other_load": 2.0}, 2) is False  # at the core count: not above
    assert stats.machine_busy({"load1_max": 2.5, "cores": 2}) is True  # no per-process view: the load average
    assert stats.machine_busy({"load1_max": 1.5, "cores": 2}) is False
    assert stats.machine_busy(None, 2) is False
    assert load_verdict("floor_ratio", 1.7, QUIET, 2) == "met"
    assert load_verdict("floor_ratio", 2.4, QUIET, 2) == "missed"
    assert load_verdict("floor_ratio", 1.7, BUSY, 2) == "inconclusive"
    assert load_verdict("floor_ratio", 2.4, BUSY, 2) == "inconclusive"
    assert load_verdict("login_cpu_ratio", 0.95, {**QUIET, "other_load": 8.0}, 4) == "inconclusive"
    assert load_verdict("login_cpu_ratio", 0.95, {**QUIET, "other_load": 3.0}, 4) == "met"
    assert load_verdict("floor_ratio", float("nan"), BUSY, 2) == "n/a"


def test_the_load_of_a_figure_from_samples():
    from bench import load
    samples = [{"load1": 1.0, "running": 5, "own_running": 4, "other_running": 1},
               {"load1": 3.0, "running": 7, "own_running": 3, "other_running": 4}]
    # 2 s, the machine busy 3 s of CPU, the bench 1 s of it: the others 1 core
    first = (0.0, 0, 0)
    last = (2.0, 3 * load.HZ, load.HZ)
    out = load.summarize_samples(samples, first, last, cores=2)
    assert (out["load1_max"], out["other_load"], out["own_load"]) == (3.0, 2.5, 3.5)
    assert out["other_cpu_cores"] == pytest.approx(1.0)
    merged = load.merge([out, {**out, "other_load": 0.5, "load1_max": 1.0}])
    assert merged["other_load"] == 1.5 and merged["load1_max"] == 3.0
    import multiprocessing
    import time
    with load.LoadMonitor(interval=0.1) as monitor:  # the bench and the children it starts are its own
        time.sleep(0.15)
        child = multiprocessing.get_context("spawn").Process(target=_spin, args=(0.6,))
        child.start()
        child.join()
    assert monitor._own_cpu >= 0.4 * load.HZ  # the child born after the first sample: its CPU is the bench's
    live = monitor.result()
    assert live["samples"] >= 3 and live["own_load"] >= 0 and live["other_load"] >= 0


def _spin(seconds: float) -> None:
    import time
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_three_runs_report_the_median_of_each_number():
    runs = [{"floor_ratio": 1.9, "all_ms": {"median": 12.0, "n": 30}, "by_kind": {"a": {"sql_statements": 4}},
             "note": "x"},
            {"floor_ratio": 3.5, "all_ms": {"median": 30.0, "n": 30}, "by_kind": {"a": {"sql_statements": 4}},
             "note": "y"},
            {"floor_ratio": 1.7, "all_ms": {"median": 11.0, "n": 30}, "by_kind": {"a": {"sql_statements": 4}},
             "note": "z"}]
    m = stats.median_of_runs(runs)
    assert m["floor_ratio"] == 1.9 and m["all_ms"] == {"median": 12.0, "n": 30}
    assert m["by_kind"]["a"]["sql_statements"] == 4 and m["note"] == "x"


def test_table_lists_every_figure_with_its_verdict():
    login = {"per_core": summarize([30, 31]), "latency_ms": summarize([50, 60]), "threads": 4, "ratio_to_raw": 0.75,
             "cpu": {"auth_workers": 2, "raw_verify_cpu_ms": summarize([16.0]), "login_cpu_ms": summarize([20.0]),
                     "ratio_by_round": summarize([0.8, 0.82]), "ratio": 0.81},
             "auth_peak_rss_mb": [120.0, 110.5], "concurrent_verifies": {"workers": 2, "threads": 4}, "load": QUIET}
    results = {"machine": {"cores": 2},
               "argon2_raw": {"per_core": summarize([40, 41]), "params": {"time_cost": 2, "memory_cost_kib": 19456,
                                                                          "parallelism": 1}},
               "login": login,
               "client_home": {"home_ms": summarize([5, 6]), "switch_and_home_ms": summarize([9, 10]),
                               "sql_statements": 4, "load": QUIET},
               "memory": {"auth": {"web_master": {"rss_mb": 70.0, "pss_mb": 30.0},
                                   "web_workers": [{"rss_mb": 78.0, "pss_mb": 40.0}, {"rss_mb": 81.0, "pss_mb": 61.0}],
                                   "worker": {"rss_mb": 79.0, "pss_mb": 70.0}, "worker_children": []}}}
    text = render_table(runner.rows_of(results), title="t")
    line = {key: next(li for li in text.splitlines() if key in li) for key in
            ("raw verify CPU / CPU per login", "login rate via gateway", "client home", "peak RSS",
             "workers RSS MB", "workers PSS MB", "auth: worker (consumers")}
    assert "0.81" in line["raw verify CPU / CPU per login"] and "missed" in line["raw verify CPU / CPU per login"]
    assert "0.75" in line["login rate via gateway"] and "missed" not in line["login rate via gateway"]  # no budget
    assert "met" in line["client home"]
    assert "4 verifies at once per worker × 2 workers" in line["peak RSS"] and "120.0 / 110.5" in line["peak RSS"]
    assert "78.0 / 81.0" in line["workers RSS MB"] and "missed" in line["workers RSS MB"]  # each worker judged
    assert "missed" in line["workers PSS MB"] and "met" in line["auth: worker (consumers"]
    busy = render_table(runner.rows_of({**results, "login": {**login, "load": BUSY},
                                        "client_home": {**results["client_home"], "load": BUSY}}), title="t")
    for key in ("raw verify CPU / CPU per login", "client home"):
        assert "inconclusive" in next(li for li in busy.splitlines() if key in li)
    assert "other load 2.6" in busy
    # memory does not depend on the load
    assert "missed" in next(li for li in busy.splitlines() if "workers PSS MB" in li)
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


# --------------------------------------------------------------------------- the documents figures (issue 10)


def _documents_world(config, bus, tmp_path):
    """The bench's two documents firms, made through the users service's functions and carried to
    the documents projection by the in-process bus (the running stack's worker, in the bench)."""
    world = documents.create_world(config, url="http://bench.invalid", admin_id=uuid.UUID(int=10),
                                   admin_email="admin@documentos.example", password=runner.PASSWORD, workdir=tmp_path)
    bus.pump()
    documents.wait_for_projection(config, world, timeout=0)
    return world


def _access(session, world, identity_id, firm):
    from services.documents import queries as dq
    found, member = next((f, m) for f, m in dq.memberships(session, identity_id=identity_id) if f.id == firm.id)
    return dq.access_for(session, found, member)


def test_document_bulk_rows_read_like_the_service_wrote_them(config, bus, tmp_path):
    from services.documents import queries as dq
    from services.documents.models import Document
    from services.documents.services import Metadata
    from testsupport.documents import publish
    world = _documents_world(config, bus, tmp_path)
    home = world.home
    assert len(home.department_ids) == 5 and home.department_names[0]  # the firm's default departments
    mine, theirs = (home.company_ids[0], home.department_ids[0], None), (home.company_ids[5], home.department_ids[0], None)
    bulk = documents.grow(world, home, [mine, theirs], have=0, want=10)
    real = publish(config, firm_id=home.id, company_id=home.company_ids[0], department_name=home.department_names[0],
                   data=documents.make_guias(config, home, 1, today=world.today)[0], name="DAS 10-2026.pdf",
                   by=world.admin_actor(), meta=Metadata(competencia="10/2026", guia_tipo="DAS",
                                                         vencimento=world.today, valor=Decimal("10.00")))
    with database("documents", config).begin() as s:
        ours, theirs_ = s.get(Document, real), s.get(Document, bulk[0])  # bulk row 0: a DAS, like `real`
        for column in Document.__table__.columns:
            assert (getattr(ours, column.key) is None) == (getattr(theirs_, column.key) is None), column.key
        assert (theirs_.status, theirs_.kind, theirs_.media_type, theirs_.added_by) == (
            ours.status, ours.kind, ours.media_type, ours.added_by)
        assert theirs_.object_key != ours.object_key and theirs_.wrapped_key and theirs_.published_at
        admin = _access(s, world, world.admin_id, home)
        listed = dq.documents_in(s, admin, company_id=mine[0], department_id=mine[1])
        assert [d.id for d in listed] == [real] + bulk[0:10:2]  # newest first: the bulk rows in their order
        person = _access(s, world, world.person_id, home)
        assert dq.document(s, person, bulk[0]) is not None  # in the person's companies
        assert dq.document(s, person, bulk[1]) is None      # another company of the firm: as absent as none
    seed.bulk_openings(config, firm_id=home.id, document_ids=bulk[:2], identity_id=world.person_id,
                       name=documents.PERSON_NAME, opened_at=datetime.now().astimezone(),
                       member_id=world.person_member_id)
    with database("documents", config).begin() as s:
        opened = dq.opened_by(s, _access(s, world, world.admin_id, home), bulk)
        assert {d: v.name for d, v in opened.items()} == {bulk[0]: documents.PERSON_NAME, bulk[1]: documents.PERSON_NAME}


def test_the_floor_replays_the_statements_of_documents_pages(config, bus, tmp_path):
    world = _documents_world(config, bus, tmp_path)
    home_path = documents.HOME_PATH.format(slug=world.home.slug)
    person = world.in_process("person")
    captured = person.capture(home_path)
    assert len(captured) == person.statements(home_path) >= 3
    firm = world.folders
    sub = seed.add_folder(config, firm_id=firm.id, company_id=firm.company_ids[0], department_id=firm.department_ids[0],
                          name="2025", created_by=world.admin_id)
    listed = documents.grow(world, firm, [(firm.company_ids[0], firm.department_ids[0], None)], have=0, want=7)
    paths, kinds = documents.folder_kinds(world, sub)
    admin = world.in_process("admin")
    root = admin.capture(paths["pasta raiz"])
    conn = runner.raw_connection(config.database_url("documents"))
    try:
        rows = dict(zip([" ".join(st.split()[:2]).rstrip(",") for st, _p in root], runner.replay(conn, root),
                        strict=True))
        assert rows["SELECT documents.id"] == len(listed)  # the folder's documents, read raw
        runner.replay(conn, person.capture(home_path))
    finally:
        conn.close()
    small = {kind: admin.statements(paths[kind].split("?")[0], kinds[kind]) for kind in paths}
    documents.grow(world, firm, [(c, firm.department_ids[1], None) for c in firm.company_ids], have=7, want=200)
    assert {kind: admin.statements(paths[kind].split("?")[0], kinds[kind]) for kind in paths} == small
    with pytest.raises(RuntimeError):  # another firm's folder is a 404, reported, not counted
        world.in_process("person").capture(paths["pasta raiz"])


def test_the_files_the_documents_figures_send(config, bus, tmp_path):
    import io

    from services.documents import inspection
    from services.documents.distribution import propose, read_guia
    pdfs = documents.upload_pdfs(3, size=200_000)
    assert len(set(pdfs)) == 3 and all(150_000 < len(p) < 300_000 for p in pdfs)
    for pdf in pdfs:
        assert inspection.sniff(io.BytesIO(pdf), "a.pdf").code == "pdf"
        inspection.check_pdf(io.BytesIO(pdf))
    archive = tmp_path / "big.zip"
    documents.zip_of_random(archive, 300_000)
    assert 290_000 < archive.stat().st_size <= 300_000
    assert inspection.sniff(io.BytesIO(archive.read_bytes()), "x.zip").code == "zip"
    world = _documents_world(config, bus, tmp_path)
    guias = documents.make_guias(config, world.folders, 50, today=world.today)
    index = documents.company_index(config, world.folders)
    proposals = [propose(read_guia(io.BytesIO(g)), index) for g in guias]
    assert [p.status for p in proposals].count("identified") == 49  # the 50th names no company of the firm
    named = {p.company_id for p in proposals if p.company_id}
    assert len(named) == 49 and named < set(world.folders.company_ids)  # round robin over the firm's companies
    assert all(p.vencimento and p.valor and p.competencia for p in proposals)


def test_documents_rows_and_their_verdicts():
    listing = runner.floor_figure({"home": {"page": [0.010, 0.012], "floor": [0.004, 0.005]}}, {"home": 5})
    results = {
        "documents_home": {"sizes": {"100": {**listing, "person_documents": 5}, "10000": listing},
                           "summary": runner.sized_summary({"100": listing, "10000": listing})},
        "documents_download": {"size_mb": 50.0, "downloads": 3, "workers": 2, "serving_worker_growth_mb": 10.4,
                               "rss_growth_mb": 10.4, "rate_mb_s": summarize([150]), "raw_s3_get_mb_s": summarize([700])},
        "documents_upload": {"measured": False, "why": "route missing (HTTP 404 on POST /x)"},
        "documents_distribute": {"files": 300, "distribute_per_s": summarize([100]), "pypdf_per_s": summarize([210]),
                                 "ratio": 100 / 210, "proposals": {"identified": 294, "unidentified": 6}},
    }
    lines = render_table(runner.rows_of({"machine": {"cores": 2}, **results}), title="t").splitlines()

    def line(text):
        return next(x for x in lines if text in x)
    assert "5 in the person's companies" in line("Documentos home (client), 100 documents")
    assert "met" in line("Documentos home (client) p50 10,000 / 100")
    assert "missed" in line("RSS growth")
    assert "not measured: route missing" in line("upload rate") and "n/a" in line("upload rate")
    assert "missed" in line("distribution rate / pypdf rate")
