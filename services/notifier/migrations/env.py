from services.common.migrations_env import run
from services.notifier.models import metadata

run(metadata, "notifier")
