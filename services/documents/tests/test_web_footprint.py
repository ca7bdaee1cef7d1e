"""What a documents web worker holds in memory (issue 11, target 7: ≤ 80 MB RSS per gunicorn worker).

gunicorn builds the app once in its master (preload_app) and the workers inherit every page of it,
so whatever the app's import path loads counts in each worker's RSS. pypdf (with Pillow behind it)
is read only by an upload of a PDF and by Distribuir automaticamente; boto3 and s3transfer add
nothing the S3 backend uses. These tests fail when one of them creeps back into the import path."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("pypdf", "PIL", "boto3", "s3transfer", "fpdf")


def _run(code: str, tmp_path: Path) -> dict:
    env = {**os.environ, "BALCAO_VAR_DIR": str(tmp_path), "BALCAO_DEMO": "0"}
    for name in [n for n in env if n.startswith("BALCAO_DOCUMENTS_S3")]:
        env.pop(name)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_web_app_imports_neither_pypdf_nor_boto3(tmp_path):
    code = ("import json, sys\n"
            "from services.documents.app import create_app\n"
            "app = create_app()\n"
            "from services.common.worker import compile_templates\n"
            "compile_templates(app)\n"
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n")
    assert _run(code, tmp_path) == []


def test_the_s3_client_is_botocores_without_boto3(tmp_path):
    """The client of the S3 backend (built in the gunicorn master, shared by the workers) comes
    without boto3 and s3transfer, with every operation the storage uses."""
    code = ("import json, sys, gc\n"
            "from services.documents.storage import s3_client\n"
            "client = s3_client('http://127.0.0.1:9', 'us-east-1', aws_access_key_id='k', aws_secret_access_key='s')\n"
            "gc.collect()\n"
            "print(json.dumps({'heavy': sorted(m for m in ('boto3', 's3transfer') if m in sys.modules),\n"
            "                  'methods': [m for m in ('put_object', 'get_object', 'create_multipart_upload',\n"
            "                              'upload_part', 'complete_multipart_upload', 'abort_multipart_upload',\n"
            "                              'delete_object', 'head_bucket', 'create_bucket') if hasattr(client, m)],\n"
            "                  'paginators': [client.can_paginate(op) for op in ('list_objects_v2', 'list_multipart_uploads')],\n"
            "                  'endpoint': client.meta.endpoint_url, 'region': client.meta.region_name}))\n")
    seen = _run(code, tmp_path)
    assert seen["heavy"] == []
    assert len(seen["methods"]) == 9 and seen["paginators"] == [True, True]
    assert seen["endpoint"] == "http://127.0.0.1:9" and seen["region"] == "us-east-1"

