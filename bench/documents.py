"""Issue 10's figures ("Documentos", section "Performance") in `python -m bench`: the documents
service behind the gateway of the distributed stack, its objects on a SeaweedFS S3 server
started by the run. See bench/README.md, "Documentos".

    documents_home            a client's documents home beside its floor, 10,000 vs 100 documents
    documents_folder          a staff member's folder listing beside its floor, 100,000 vs 1,000
    documents_download        a 50 MB download: growth of the documents web worker's RSS, rate
    documents_upload          1 MB uploads through the gateway vs raw S3 PUTs to the same store
    documents_distribute      read_guia + propose on 300 guias vs pypdf's text extraction alone
    documents_distribute_http the same batch through the gateway (its route), vs the same pypdf rate

The routes of the upload and of the batch are being built while this is written: their paths
and form fields are the constants below, and a figure whose route answers 404/405 says "not
measured (route missing)" instead of failing the run.
"""
from __future__ import annotations

import hashlib
import io
import re
import statistics
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

from . import seed
from .stats import Row, fmt, ms, summarize, verdict

FIGURES = ("documents_home", "documents_folder", "documents_download", "documents_upload", "documents_distribute",
           "documents_distribute_http")

HOME_PATH = "/documentos/e/{slug}/"
FOLDER_PATH = "/documentos/e/{slug}/empresas/{company}/{department}/"
DOWNLOAD_PATH = "/documentos/e/{slug}/documentos/{document}/baixar"
# Publicar documentos (staff): a POST to the folder page's action, multipart, the files in one field,
# with the CSRF token of the folder page. Distribuir automaticamente: the batch of PDFs likewise.
UPLOAD_PATH = "/documentos/e/{slug}/empresas/{company}/{department}/publicar"
UPLOAD_FIELD = "arquivos"
DISTRIBUTE_PATH = "/documentos/e/{slug}/distribuir"
DISTRIBUTE_FIELD = "arquivos"
DISTRIBUTE_BATCH = 100          # files per POST of the batch (a browser's drop of 300 sends them in a few)
ROUTE_MISSING = (404, 405)
MB = 1024 * 1024

HOME_FIRM, FOLDER_FIRM = "Contabilidade Documentos", "Contabilidade Pastas"
PERSON_EMAIL, PERSON_NAME = "cliente.documentos@bench.example", "Cliente Documentos"
FOLDER_CLIENT_NAME = "Cliente Pastas"
HOME_COMPANIES, PERSON_COMPANIES, FOLDER_COMPANIES = 20, 2, 50
FOLDER_FIXED = 40               # documents in the listed folder, and in its subfolder, at every size


def log(msg: str) -> None:
    from .runner import log as runner_log
    runner_log(msg)


# --------------------------------------------------------------------------- the two firms


@dataclass
class DocFirm:
    id: uuid.UUID
    name: str
    slug: str
    company_ids: list
    department_ids: list = field(default_factory=list)     # by position, from the projection
    department_names: list = field(default_factory=list)


@dataclass
class World:
    """What the documents figures share: the configuration (documents on the run's S3 server), the
    stack's address, the firms, the people and their sessions."""
    config: object
    url: str
    home: DocFirm
    folders: DocFirm
    admin_id: uuid.UUID
    admin_email: str
    person_id: uuid.UUID
    person_member_id: uuid.UUID
    folder_client_id: uuid.UUID
    password: str
    workdir: Path
    today: date = field(default_factory=date.today)
    sessions: dict = field(default_factory=dict)
    _sample: object = None
    _guias: list | None = None

    def session(self, who: str):
        from .runner import http_login
        if who not in self.sessions:
            email = self.admin_email if who == "admin" else PERSON_EMAIL
            self.sessions[who] = http_login(self.url, email, self.password)
        return self.sessions[who]

    def in_process(self, who: str):
        from .runner import InProcessApp
        if who == "admin":
            return InProcessApp(self.config, service="documents", identity_id=self.admin_id, email=self.admin_email,
                                name="Admin Bench")
        return InProcessApp(self.config, service="documents", identity_id=self.person_id, email=PERSON_EMAIL,
                            name=PERSON_NAME)

    def admin_actor(self):
        return _Person(self.admin_id, "Admin Bench")

    def sample(self):
        """A real stored guia (received and stored as the upload does: checked, encrypted, on S3):
        the size, SHA-256 and wrapped key every bulk row carries, and its inspection.Kind."""
        if self._sample is None:
            from services.documents import services
            from services.documents.sample_pdfs import das_guia
            from services.documents.vault import vault_from_config
            self._sample = services.receive_file(vault_from_config(self.config), io.BytesIO(das_guia()),
                                                 name="DAS 10-2026.pdf", max_bytes=self.config.documents_max_mb * MB)
        return self._sample

    def guias(self, count: int) -> list[bytes]:
        if self._guias is None or len(self._guias) != count:
            self._guias = make_guias(self.config, self.folders, count, today=self.today)
        return self._guias


@dataclass(frozen=True)
class _Person:  # what testsupport.documents.publish needs of the one who publishes
    identity_id: uuid.UUID
    name: str


def make_world(config, *, url: str, admin_id, admin_email: str, password: str, workdir: Path) -> World:
    """create_world, then wait until the running stack's documents worker has built the projection."""
    world = create_world(config, url=url, admin_id=admin_id, admin_email=admin_email, password=password,
                         workdir=workdir)
    wait_for_projection(config, world)
    return world


def create_world(config, *, url: str, admin_id, admin_email: str, password: str, workdir: Path) -> World:
    """The two firms through the users service's own functions (create_firm with its default
    departments and its Administrador, create_company, register_client_user + grant_membership);
    their events carry them to the documents service's projection, which the pages read."""
    home = seed.create_firm(config, n=30, name=HOME_FIRM, admin_identity_id=admin_id, admin_email=admin_email)
    home_companies = seed.create_companies(config, firm_id=home["id"], count=HOME_COMPANIES, start=7000)
    person_id = seed.register_identity(config, email=PERSON_EMAIL, name=PERSON_NAME, password=password)
    member_id = seed.client_user_of(config, firm_id=home["id"], identity_id=person_id, name=PERSON_NAME,
                                    email=PERSON_EMAIL, company_ids=home_companies[:PERSON_COMPANIES])
    folders = seed.create_firm(config, n=31, name=FOLDER_FIRM, admin_identity_id=admin_id, admin_email=admin_email)
    folder_companies = seed.create_companies(config, firm_id=folders["id"], count=FOLDER_COMPANIES, start=8000)
    folder_client = uuid.uuid4()  # a client who never logs in here: their openings are "Visualizado por"
    seed.client_user_of(config, firm_id=folders["id"], identity_id=folder_client, name=FOLDER_CLIENT_NAME,
                        email="cliente.pastas@bench.example", company_ids=folder_companies[:1])
    world = World(config=config, url=url, admin_id=uuid.UUID(str(admin_id)), admin_email=admin_email,
                  person_id=uuid.UUID(str(person_id)), person_member_id=member_id, folder_client_id=folder_client,
                  password=password, workdir=workdir,
                  home=DocFirm(home["id"], home["name"], home["slug"], home_companies),
                  folders=DocFirm(folders["id"], folders["name"], folders["slug"], folder_companies))
    return world


def wait_for_projection(config, world: World, timeout: float = 120) -> None:
    """Until the documents database holds both firms (slug, companies, departments), their
    Administrador and the two clients, active with their companies and every department."""
    from sqlalchemy import func, select

    from services.common.runtime import database
    from services.documents.models import Company, Department, Firm, Member, MemberCompany, MemberDepartment
    from services.users.models import DEFAULT_DEPARTMENTS
    deadline = time.monotonic() + timeout
    missing = "nothing yet"
    while True:
        with database("documents", config).begin() as s:
            missing = ""
            for firm in (world.home, world.folders):
                if s.scalar(select(Firm.slug).where(Firm.id == firm.id)) != firm.slug:
                    missing += f" {firm.name}: firm;"
                if s.scalar(select(func.count()).where(Company.firm_id == firm.id)) != len(firm.company_ids):
                    missing += f" {firm.name}: companies;"
                departments = s.execute(select(Department.id, Department.name).where(Department.firm_id == firm.id)
                                        .order_by(Department.position)).all()
                firm.department_ids = [d for d, _n in departments]
                firm.department_names = [n for _d, n in departments]
                if len(departments) != len(DEFAULT_DEPARTMENTS):
                    missing += f" {firm.name}: departments;"
                admin = s.scalar(select(Member.id).where(Member.firm_id == firm.id, Member.identity_id == world.admin_id,
                                                         Member.status == "active"))
                if admin is None:
                    missing += f" {firm.name}: administrator;"
            for identity, firm, companies in ((world.person_id, world.home, PERSON_COMPANIES),
                                              (world.folder_client_id, world.folders, 1)):
                member = s.scalar(select(Member.id).where(Member.firm_id == firm.id, Member.identity_id == identity,
                                                          Member.status == "active"))
                links = (s.scalar(select(func.count()).where(MemberCompany.member_id == member)),
                         s.scalar(select(func.count()).where(MemberDepartment.member_id == member))) if member else ()
                if links != (companies, len(DEFAULT_DEPARTMENTS)):
                    missing += f" {firm.name}: client;"
        if not missing:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the documents projection is incomplete after {timeout:.0f} s:{missing}")
        time.sleep(0.3)


# --------------------------------------------------------------------------- listings beside their floors


def grow(world: World, firm: DocFirm, places, *, have: int, want: int) -> list:
    """Published documents `have` … `want - 1` of a sequence spread over `places`; their ids."""
    if want <= have:
        return []
    sample = world.sample()
    now = datetime.now().astimezone()
    return seed.bulk_documents(world.config, firm_id=firm.id, places=places, count=want - have, start=have,
                               stored=sample.stored, kind=sample.kind, added_by=world.admin_id,
                               added_by_name="Admin Bench", today=world.today, now=now)


def home_figure(world: World, *, sizes, share: int, reps: int, warmup: int) -> dict:
    """The client's documents home (GET /documentos/e/<slug>/) at each size of the firm, 1/`share`
    of its documents in the person's companies (× every department); the rest in the firm's other
    companies. The person opened one in three of their documents (DocumentView; the notification
    read), the rest unread. Each size beside its floor (runner.measure_vs_floor)."""
    from .runner import analyze, measure_vs_floor, raw_connection, sized_summary
    firm = world.home
    mine = [(c, d, None) for c in firm.company_ids[:PERSON_COMPANIES] for d in firm.department_ids]
    others = [(c, d, None) for c in firm.company_ids[PERSON_COMPANIES:] for d in firm.department_ids]
    path = HOME_PATH.format(slug=firm.slug)
    session, in_proc = world.session("person"), world.in_process("person")
    conn = raw_connection(world.config.database_url("documents"))
    figures, have_mine, have_others = {}, 0, 0
    try:
        for size in sizes:
            want_mine = size // share
            log(f"documents home: {size:,} documents in the firm, {want_mine:,} in the person's companies")
            ids = grow(world, firm, mine, have=have_mine, want=want_mine)
            grow(world, firm, others, have=have_others, want=size - want_mine)
            have_mine, have_others = want_mine, size - want_mine
            now = datetime.now().astimezone()
            seed.bulk_openings(world.config, firm_id=firm.id, document_ids=ids[::3], identity_id=world.person_id,
                               name=PERSON_NAME, opened_at=now, member_id=world.person_member_id)
            unread = [d for i, d in enumerate(ids) if i % 3]
            seed.bulk_notifications(world.config, firm_id=firm.id, document_ids=unread, identity_id=world.person_id,
                                    member_id=world.person_member_id, created_at=now)
            analyze(world.config, "documents")
            figures[str(size)] = measure_vs_floor(session, world.url, in_proc, {"home": path}, {"home": {}}, conn,
                                                  reps=reps, warmup=warmup, expect=firm.name)
            figures[str(size)]["person_documents"] = want_mine
    finally:
        conn.close()
    return {"sizes": figures, "summary": sized_summary(figures)}


def folder_kinds(world: World, subfolder) -> tuple[dict[str, str], dict[str, dict]]:
    firm = world.folders
    base = FOLDER_PATH.format(slug=firm.slug, company=firm.company_ids[0], department=firm.department_ids[0])
    kinds = {"pasta raiz": {}, "subpasta": {"pasta": str(subfolder)}}
    return {k: base + ("?" + urlencode(q) if q else "") for k, q in kinds.items()}, kinds


def folder_figure(world: World, *, sizes, reps: int, warmup: int) -> dict:
    """A staff member's (the Administrador's) folder listing: the first company × first
    department's root and its subfolder "2025", FOLDER_FIXED documents each at every size (half
    of them opened by the company's client: "Visualizado por"); the rest of the firm's documents
    in the other companies × departments and in the same place's subfolder "Arquivo" (so the
    listed place grows with the firm while the page lists the same rows)."""
    from .runner import analyze, measure_vs_floor, raw_connection, sized_summary
    firm = world.folders
    c0, d0 = firm.company_ids[0], firm.department_ids[0]
    sub = seed.add_folder(world.config, firm_id=firm.id, company_id=c0, department_id=d0, name="2025",
                          created_by=world.admin_id)
    archive = seed.add_folder(world.config, firm_id=firm.id, company_id=c0, department_id=d0, name="Arquivo",
                              created_by=world.admin_id)
    listed = grow(world, firm, [(c0, d0, None), (c0, d0, sub)], have=0, want=2 * FOLDER_FIXED)
    seed.bulk_openings(world.config, firm_id=firm.id, document_ids=listed[::2], identity_id=world.folder_client_id,
                       name=FOLDER_CLIENT_NAME, opened_at=datetime.now().astimezone())
    places = [(c, d, None) for c in firm.company_ids for d in firm.department_ids if (c, d) != (c0, d0)]
    places.append((c0, d0, archive))
    paths, kinds = folder_kinds(world, sub)
    session, in_proc = world.session("admin"), world.in_process("admin")
    conn = raw_connection(world.config.database_url("documents"))
    figures, have = {}, 0
    try:
        for size in sizes:
            log(f"documents folder listing: {size:,} documents in the firm")
            grow(world, firm, places, have=have, want=size - 2 * FOLDER_FIXED)
            have = size - 2 * FOLDER_FIXED
            analyze(world.config, "documents")
            figures[str(size)] = measure_vs_floor(session, world.url, in_proc, paths, kinds, conn, reps=reps,
                                                  warmup=warmup, expect=firm.department_names[0])
    finally:
        conn.close()
    return {"sizes": figures, "summary": sized_summary(figures)}


# --------------------------------------------------------------------------- download: memory and rate


def rss_kb(pid: int) -> int | None:
    """VmRSS of a process in kB (as runner.proc_memory_mb reads it, unrounded)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"VmRSS:\s+(\d+)", status)
    return int(found.group(1)) if found else None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat)."""
    import os
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssSampler:
    """VmRSS of some processes every `interval` seconds in a thread: the peak of each."""

    def __init__(self, pids, interval: float = 0.01):
        self.pids = list(pids)
        self.interval = interval
        self.peak: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for pid in self.pids:
                value = rss_kb(pid)
                if value is not None and value > self.peak.get(pid, 0):
                    self.peak[pid] = value
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


def zip_of_random(path: Path, size: int, *, seed_value: int = 7) -> None:
    """A ZIP (stored, not compressed) of `size` bytes or a little less: one member of random bytes
    (a month's XML invoices would be as incompressible after encryption)."""
    import random
    rng = random.Random(seed_value)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        with zf.open("notas-fiscais.xml", "w", force_zip64=True) as member:
            left = size - 4096  # room for the headers and the central directory
            while left > 0:
                piece = min(left, MB)
                member.write(rng.randbytes(piece))
                left -= piece


def download_figure(world: World, stack, *, size_mb: int, reps: int) -> dict:
    """A `size_mb` MB document (a ZIP, received, encrypted and stored on S3 as the upload does,
    published by the Administrador) downloaded `reps` times through the gateway, one at a time,
    while the VmRSS of every gunicorn worker of documents-web is sampled every 10 ms: the growth is
    the peak during the downloads minus the RSS just before (after warming every worker with
    downloads of a small document). The rate is the file's MB over each download's time; the
    raw S3 GET of the same (encrypted) object beside it."""
    from sqlalchemy import select

    from services.common.runtime import database
    from services.documents.models import Document
    from services.documents.sample_pdfs import das_guia
    from testsupport.documents import publish

    from .runner import children_of
    firm = world.folders
    path = world.workdir / "download.zip"
    zip_of_random(path, size_mb * MB)
    data = path.read_bytes()
    expected = hashlib.sha256(data).hexdigest()
    log(f"documents download: storing a {len(data) / MB:.1f} MB document")
    common = dict(firm_id=firm.id, company_id=firm.company_ids[1], department_name=firm.department_names[0],
                  by=world.admin_actor())
    big = publish(world.config, data=data, name="Notas fiscais 10-2026.zip", **common)
    small = publish(world.config, data=das_guia(), name="DAS 11-2026.pdf", **common)
    del data
    path.unlink()
    with database("documents", world.config).begin() as s:
        object_key = s.scalar(select(Document.object_key).where(Document.id == big))
    session = world.session("admin")
    master = stack.processes["documents-web"].pid
    workers = children_of(master)
    for _ in range(4 * max(1, len(workers))):  # every worker serves a download (and its S3 client) first
        r = session.get(world.url + DOWNLOAD_PATH.format(slug=firm.slug, document=small), timeout=30)
        if r.status_code != 200:
            raise RuntimeError(f"download of the small document: HTTP {r.status_code}")
    time.sleep(0.3)
    before = {pid: rss_kb(pid) or 0 for pid in workers}
    cpu_before = {pid: cpu_seconds(pid) for pid in workers}
    seconds = []
    with RssSampler(workers) as sampler:
        for _ in range(reps):
            digest, got = hashlib.sha256(), 0
            t0 = time.perf_counter()
            with session.get(world.url + DOWNLOAD_PATH.format(slug=firm.slug, document=big), stream=True,
                             timeout=120) as r:
                if r.status_code != 200:
                    raise RuntimeError(f"download of the {size_mb} MB document: HTTP {r.status_code}")
                for piece in r.iter_content(256 * 1024):
                    digest.update(piece)
                    got += len(piece)
            seconds.append(time.perf_counter() - t0)
            if digest.hexdigest() != expected:
                raise RuntimeError("the downloaded bytes differ from the uploaded ones")
        time.sleep(0.1)
    after = {pid: rss_kb(pid) or 0 for pid in workers}
    growth = {pid: (max(sampler.peak.get(pid, 0), after[pid]) - before[pid]) / 1024 for pid in workers}
    cpu = {pid: cpu_seconds(pid) - cpu_before[pid] for pid in workers}
    served = max(workers, key=lambda pid: cpu[pid])  # the worker that decrypted the most
    raw = raw_get_rate(world, object_key, reps=reps)
    return {"size_mb": round(got / MB, 1), "downloads": reps, "workers": len(workers),
            "rss_before_mb": {str(p): round(v / 1024, 1) for p, v in before.items()},
            "rss_peak_mb": {str(p): round(sampler.peak.get(p, 0) / 1024, 1) for p in workers},
            "rss_after_mb": {str(p): round(v / 1024, 1) for p, v in after.items()},
            "cpu_seconds": {str(p): round(v, 2) for p, v in cpu.items()},
            "serving_worker_growth_mb": growth[served], "rss_growth_mb": max(growth.values()),
            "rate_mb_s": summarize([got / MB / s for s in seconds]), "raw_s3_get_mb_s": raw}


def s3_client(config):
    from services.documents.storage import s3_client as make
    return make(config.documents_s3_endpoint, config.documents_s3_region)


def raw_get_rate(world: World, object_key: str, *, reps: int) -> dict:
    """MB/s of a plain boto3 GetObject of the stored (encrypted) object, read to its end."""
    client = s3_client(world.config)
    rates = []
    for _ in range(reps):
        t0 = time.perf_counter()
        body = client.get_object(Bucket=world.config.documents_s3_bucket, Key=object_key)["Body"]
        got = sum(len(piece) for piece in body.iter_chunks(256 * 1024))
        rates.append(got / MB / (time.perf_counter() - t0))
    return summarize(rates)


# --------------------------------------------------------------------------- upload vs raw S3 PUT


def upload_pdfs(count: int, *, size: int = MB, tag: str = "UP") -> list[bytes]:
    """`count` distinct PDFs of about `size` bytes (a page with a photo of noise): one made by
    fpdf2, the others the same with another number in its title (same length: offsets hold)."""
    import random

    from fpdf import FPDF
    from PIL import Image
    side = int((size / 3) ** 0.5)
    image = Image.frombytes("RGB", (side, side), random.Random(size).randbytes(side * side * 3))
    png = io.BytesIO()
    image.save(png, "PNG")
    pdf = FPDF(format="A4")
    marker = f"Relatorio {tag}-000000"
    pdf.set_title(marker)
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    pdf.cell(0, 7, "Relatório anual")
    pdf.image(png, x=10, y=20, w=150)
    base = bytes(pdf.output())
    return [base.replace(marker.encode(), f"Relatorio {tag}-{i:06d}".encode()) for i in range(count)]


def _published_in(config, firm_id, company_id, department_id) -> int:
    from sqlalchemy import func, select

    from services.common.runtime import database
    from services.documents.models import Document
    with database("documents", config).begin() as s:
        return s.scalar(select(func.count()).where(Document.firm_id == firm_id, Document.company_id == company_id,
                                                   Document.department_id == department_id))


def _csrf_of(html: str) -> str | None:
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    return found.group(1) if found else None


def _answer_status(answer) -> str | None:
    """The "status" of an upload's JSON answer (documents.js reads it), None when not JSON."""
    try:
        return answer.json().get("status")
    except ValueError:
        return None


def upload_figure(world: World, *, files: int, rounds: int) -> dict:
    """Rounds of `files` 1 MB PDFs, each uploaded through the gateway (one POST per file, one at a
    time, as a browser's progress bars send them: checked, encrypted, stored and published by the
    service) right beside a raw S3 PUT of the same bytes (boto3 PutObject with the service's client
    settings, same bucket), in turns first: on a shared machine both see the same moments. Each
    round gives the two rates; the figure is the median of the per-round ratios. "not measured
    (route missing)" when UPLOAD_PATH answers 404/405."""
    firm = world.folders
    company, department = firm.company_ids[2], firm.department_ids[1]
    session = world.session("admin")
    page = session.get(world.url + FOLDER_PATH.format(slug=firm.slug, company=company, department=department),
                       timeout=30)
    token = _csrf_of(page.text) if page.status_code == 200 else None
    target = world.url + UPLOAD_PATH.format(slug=firm.slug, company=company, department=department)
    bodies = upload_pdfs(1 + files * rounds)
    result: dict = {"path": UPLOAD_PATH, "field": UPLOAD_FIELD, "file_bytes": len(bodies[0]), "files": files,
                    "rounds": rounds}
    before = _published_in(world.config, firm.id, company, department)

    def post(i: int):
        # as documents.js sends each file (its progress bar): an XMLHttpRequest, answered in JSON
        return session.post(target, data={"csrf_token": token or ""}, allow_redirects=False, timeout=60,
                            headers={"X-Requested-With": "XMLHttpRequest"},
                            files=[(UPLOAD_FIELD, (f"Relatório {i:04d}.pdf", bodies[i], "application/pdf"))])

    probe = post(0)
    if probe.status_code in ROUTE_MISSING:
        return {**result, "measured": False, "why": f"route missing (HTTP {probe.status_code} on POST {UPLOAD_PATH})"}
    if probe.status_code >= 400 or _answer_status(probe) != "published" \
            or _published_in(world.config, firm.id, company, department) != before + 1:
        return {**result, "measured": False,
                "why": f"upload failed (HTTP {probe.status_code}; documents recorded: "
                       f"{_published_in(world.config, firm.id, company, department) - before})"}
    client, bucket = s3_client(world.config), world.config.documents_s3_bucket
    raw_rates, upload_rates, ratios, latencies, raw_keys, failures = [], [], [], [], [], []
    for r in range(rounds):
        raw_seconds = upload_seconds = 0.0
        for j in range(files):
            i = 1 + r * files + j
            for step in ((0, 1) if j % 2 else (1, 0)):
                t0 = time.perf_counter()
                if step:
                    answer = post(i)
                    upload_seconds += time.perf_counter() - t0
                    latencies.append(time.perf_counter() - t0)
                    if answer.status_code >= 400 or _answer_status(answer) != "published":
                        failures.append(answer.status_code)
                else:
                    key = f"bench/raw-put/{uuid.uuid4().hex}"
                    client.put_object(Bucket=bucket, Key=key, Body=bodies[i])
                    raw_seconds += time.perf_counter() - t0
                    raw_keys.append(key)
        raw_rates.append(files / raw_seconds)
        upload_rates.append(files / upload_seconds)
        ratios.append(raw_seconds / upload_seconds)
    for key in raw_keys:
        client.delete_object(Bucket=bucket, Key=key)
    recorded = _published_in(world.config, firm.id, company, department) - before
    return {**result, "measured": True, "failures": failures, "documents_recorded": recorded,
            "raw_put_per_s": summarize(raw_rates), "upload_per_s": summarize(upload_rates),
            "upload_latency_ms": summarize(ms(latencies)), "ratio_by_round": ratios,
            "ratio": statistics.median(ratios)}


# --------------------------------------------------------------------------- Distribuir automaticamente


def make_guias(config, firm: DocFirm, count: int, *, today: date) -> list[bytes]:
    """`count` one-page guias as an accounting system prints them (services.documents.sample_pdfs:
    DAS with the CNPJ punctuated, DARF without), round robin over the firm's companies as the
    projection knows them (CNPJ), each with its competência, vencimento and valor."""
    from sqlalchemy import select

    from services.common.runtime import database
    from services.documents.models import Company
    from services.documents.sample_pdfs import darf_guia, das_guia
    from testsupport.guias import make_cnpj
    with database("documents", config).begin() as s:
        cnpjs = list(s.scalars(select(Company.document).where(Company.firm_id == firm.id).order_by(Company.document)))
    out = []
    for i in range(count):
        cnpj = cnpjs[i % len(cnpjs)] if i % 50 != 49 else make_cnpj(900 + i)  # 1 in 50: not a client of the firm
        due = today + timedelta(days=20 + i % 5)
        value = Decimal(f"{100 + i * 13 % 9000}.{i % 100:02d}")
        if i % 2:
            out.append(darf_guia(cnpj, f"{today.month:02d}/{today.year}", due, value))
        else:
            formatted = f"{cnpj[:2]}.{cnpj[2:5]}.{cnpj[5:8]}/{cnpj[8:12]}-{cnpj[12:]}"
            out.append(das_guia(formatted, f"{today.month:02d}/{today.year}", due, value))
    return out


def company_index(config, firm: DocFirm):
    from sqlalchemy import select

    from services.common.runtime import database
    from services.documents.distribution import CompanyIndex
    from services.documents.models import Company
    with database("documents", config).begin() as s:
        return CompanyIndex(s.execute(select(Company.id, Company.document_kind, Company.document)
                                      .where(Company.firm_id == firm.id, Company.active.is_(True))).all())


def pypdf_text(data: bytes) -> str:
    """What pypdf alone does: the text of the file's first page."""
    from pypdf import PdfReader
    return PdfReader(io.BytesIO(data)).pages[0].extract_text()


def pypdf_pass(guias: list[bytes]) -> float:
    """Seconds for pypdf alone to extract the text of each file's first page."""
    t0 = time.perf_counter()
    for data in guias:
        pypdf_text(data)
    return time.perf_counter() - t0


def distribute_pass(guias: list[bytes], index) -> tuple[float, float, dict]:
    """One pass over the files, each read by pypdf alone and by distribution.read_guia + propose
    (the CPU of Distribuir automaticamente) one right after the other, in turns first: on a
    shared machine both see the same moments. (pypdf's seconds, distribution's seconds, how many
    proposals of each status)."""
    from services.documents.distribution import propose, read_guia
    counts: dict[str, int] = {}
    raw = spent = 0.0
    for i, data in enumerate(guias):
        for step in ((0, 1) if i % 2 else (1, 0)):
            t0 = time.perf_counter()
            if step:
                status = propose(read_guia(io.BytesIO(data)), index).status
                spent += time.perf_counter() - t0
                counts[status] = counts.get(status, 0) + 1
            else:
                pypdf_text(data)
                raw += time.perf_counter() - t0
    return raw, spent, counts


def distribute_figure(world: World, *, count: int, rounds: int) -> dict:
    """`rounds` passes over the same `count` guias in this process (distribute_pass: each file
    through pypdf alone and through the distribution, side by side); each pass gives the two
    rates, the figure is the median of the per-pass ratios."""
    guias = world.guias(count)
    index = company_index(world.config, world.folders)
    distribute_pass(guias[:10], index)  # imports, regex compilation
    pypdf_rates, rates, ratios, counts = [], [], [], {}
    for _ in range(rounds):
        raw, spent, counts = distribute_pass(guias, index)
        pypdf_rates.append(count / raw)
        rates.append(count / spent)
        ratios.append(raw / spent)
    return {"files": count, "pypdf_per_s": summarize(pypdf_rates), "distribute_per_s": summarize(rates),
            "ratio_by_round": ratios, "ratio": statistics.median(ratios), "proposals": counts}


def distribute_http_figure(world: World, *, count: int, pypdf_per_s: float | None) -> dict:
    """The same guias through the gateway: GET the Distribuir automaticamente page (its CSRF
    token), then POST the files DISTRIBUTE_BATCH at a time; the rate is files over the whole
    batch's time, beside pypdf's rate in this run. "not measured (route missing)" on 404/405."""
    firm = world.folders
    session = world.session("admin")
    target = world.url + DISTRIBUTE_PATH.format(slug=firm.slug)
    result: dict = {"path": DISTRIBUTE_PATH, "field": DISTRIBUTE_FIELD, "files": count}
    page = session.get(target, timeout=30)
    if page.status_code in ROUTE_MISSING:
        return {**result, "measured": False, "why": f"route missing (HTTP {page.status_code} on GET {DISTRIBUTE_PATH})"}
    token = _csrf_of(page.text)
    guias = world.guias(count)
    if pypdf_per_s is None:
        pypdf_per_s = count / pypdf_pass(guias)
    statuses = []
    t0 = time.perf_counter()
    for start in range(0, count, DISTRIBUTE_BATCH):
        files = [(DISTRIBUTE_FIELD, (f"guia-{i:04d}.pdf", guias[i], "application/pdf"))
                 for i in range(start, min(count, start + DISTRIBUTE_BATCH))]
        answer = session.post(target, data={"csrf_token": token or ""}, files=files, allow_redirects=False,
                              timeout=300)
        statuses.append(answer.status_code)
        if answer.status_code in ROUTE_MISSING:
            return {**result, "measured": False,
                    "why": f"route missing (HTTP {answer.status_code} on POST {DISTRIBUTE_PATH})"}
        if answer.status_code >= 400:
            return {**result, "measured": False, "why": f"batch failed (HTTP {answer.status_code})"}
    spent = time.perf_counter() - t0
    rate = count / spent
    return {**result, "measured": True, "statuses": statuses, "per_s": rate, "pypdf_per_s": pypdf_per_s,
            "ratio": rate / pypdf_per_s}


# --------------------------------------------------------------------------- the run and the table


def run(stack, *, config, url: str, admin_id, admin_email: str, password: str, workdir: Path, only, p: dict) -> dict:
    """The documents figures chosen in `only` (their firms made once); {figure: result}."""
    from .runner import log as runner_log
    out: dict = {}
    world = make_world(config, url=url, admin_id=admin_id, admin_email=admin_email, password=password,
                       workdir=workdir)
    steps = [
        ("documents_home", lambda: home_figure(world, sizes=p["doc_home_sizes"], share=p["doc_person_share"],
                                               reps=p["doc_reps"], warmup=p["warmup"])),
        ("documents_folder", lambda: folder_figure(world, sizes=p["doc_folder_sizes"], reps=p["doc_reps"],
                                                   warmup=p["warmup"])),
        ("documents_download", lambda: download_figure(world, stack, size_mb=p["download_mb"],
                                                       reps=p["download_reps"])),
        ("documents_upload", lambda: upload_figure(world, files=p["upload_files"], rounds=p["upload_rounds"])),
        ("documents_distribute", lambda: distribute_figure(world, count=p["guias"], rounds=p["distribute_rounds"])),
        ("documents_distribute_http", lambda: distribute_http_figure(
            world, count=p["guias"],
            pypdf_per_s=(out.get("documents_distribute") or {}).get("pypdf_per_s", {}).get("median"))),
    ]
    for name, step in steps:
        if name in only:
            t0 = time.perf_counter()
            runner_log(f"{name}")
            out[name] = step()
            out[name]["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def _listing_rows(rows: list[Row], figure: dict | None, title: str, unit: str) -> None:
    if not figure:
        return
    for size, d in figure["sizes"].items():
        sql = sorted({v["sql_statements"] for v in d["by_kind"].values()})
        extra = f", {d['person_documents']:,} in the person's companies" if "person_documents" in d else ""
        load = f"; load {d['loadavg']}" if "loadavg" in d else ""
        rows.append(Row(f"{title}, {int(size):,} {unit}{extra}: ms",
                        f"p50 {fmt(d['all_ms']['median'])} (floor {fmt(d['floor_ms']['median'])}), "
                        f"p99 {fmt(d['all_ms']['p99'])}; SQL/request {sql}{load}",
                        "p50 <= 2 × floor", verdict("floor_ratio", d["floor_ratio"])))
        rows.append(Row(f"  {title} p50 / floor p50 at {int(size):,}", fmt(d["floor_ratio"], 2), "<= 2",
                        verdict("floor_ratio", d["floor_ratio"])))
    s = figure["summary"]
    a, b = s["sizes"]
    rows.append(Row(f"{title} p50 {int(b):,} / {int(a):,} {unit} (of page/floor)",
                    f"{fmt(s['p50_ratio'], 2)} ({fmt(s.get('floor_normalized_ratio'), 2)})", "<= 1.3",
                    verdict("size_ratio", s["p50_ratio"])))
    rows.append(Row(f"{title}: SQL statements constant across sizes", str(s["sql_constant"]), "constant",
                    verdict("list_sql_constant", s["sql_constant"])))


def rows_of(results: dict) -> list[Row]:
    rows: list[Row] = []
    _listing_rows(rows, results.get("documents_home"), "Documentos home (client)", "documents in the firm")
    _listing_rows(rows, results.get("documents_folder"), "Documentos folder listing (staff)", "documents in the firm")
    d = results.get("documents_download")
    if d:
        rows.append(Row(f"download of a {d['size_mb']} MB document ×{d['downloads']}: documents web worker RSS "
                        f"growth MB (the serving worker; max of {d['workers']})",
                        f"{fmt(d['serving_worker_growth_mb'])} ({fmt(d['rss_growth_mb'])})", "<= 10",
                        verdict("download_rss_growth_mb", d["rss_growth_mb"])))
        rows.append(Row("  download rate MB/s via gateway (raw S3 GET of the encrypted object)",
                        f"{fmt(d['rate_mb_s']['median'])} ({fmt(d['raw_s3_get_mb_s']['median'])})"))
    u = results.get("documents_upload")
    if u:
        if u["measured"]:
            rows.append(Row(f"uploads of {u['file_bytes'] / MB:.2f} MB files /s via gateway (raw S3 PUT /s)",
                            f"{fmt(u['upload_per_s']['median'], 2)} ({fmt(u['raw_put_per_s']['median'], 2)})"))
            rows.append(Row("  upload rate / raw S3 PUT rate (median of per-round ratios)", fmt(u["ratio"], 2),
                            ">= 0.70", verdict("upload_ratio", u["ratio"])))
        else:
            rows.append(Row("upload rate / raw S3 PUT rate", f"not measured: {u['why']}", ">= 0.70", "n/a"))
    t = results.get("documents_distribute")
    if t:
        rows.append(Row(f"Distribuir automaticamente (read_guia + propose) on {t['files']} guias /s (pypdf alone /s)",
                        f"{fmt(t['distribute_per_s']['median'])} ({fmt(t['pypdf_per_s']['median'])}); "
                        + ", ".join(f"{k} {v}" for k, v in sorted(t["proposals"].items()))))
        rows.append(Row("  distribution rate / pypdf rate (median of per-round ratios)", fmt(t["ratio"], 2),
                        ">= 0.50", verdict("distribute_ratio", t["ratio"])))
    h = results.get("documents_distribute_http")
    if h:
        if h["measured"]:
            rows.append(Row(f"Distribuir automaticamente via gateway, {h['files']} guias /s (pypdf alone /s)",
                            f"{fmt(h['per_s'])} ({fmt(h['pypdf_per_s'])})"))
            rows.append(Row("  batch rate via gateway / pypdf rate", fmt(h["ratio"], 2), ">= 0.50",
                            verdict("distribute_ratio", h["ratio"])))
        else:
            rows.append(Row("Distribuir automaticamente via gateway / pypdf rate", f"not measured: {h['why']}",
                            ">= 0.50", "n/a"))
    return rows
