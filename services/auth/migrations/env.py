from services.common.migrations_env import run
from services.auth.models import metadata

run(metadata, "auth")
