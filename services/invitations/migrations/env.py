from services.common.migrations_env import run
from services.invitations.models import metadata

run(metadata, "invitations")
