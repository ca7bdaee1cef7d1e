from services.auth.models import metadata
from services.common.migrations_env import run

run(metadata, "auth")
