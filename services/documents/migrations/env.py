from services.common.migrations_env import run
from services.documents.models import metadata

run(metadata, "documents")
