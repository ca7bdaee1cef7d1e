from services.common.migrations_env import run
from services.users.models import metadata

run(metadata, "users")
