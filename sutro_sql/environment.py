"""Every environment variable sutro-sql reads: named here, read here, nowhere else.

Explicit arguments always beat these (the callers decide that); this module only says
what the environment holds, with empty values read as unset.
"""

from __future__ import annotations

import os

#: The Sutro deployment to use (with API_KEY): set both for RemoteBackend.
API_URL = "SUTRO_API_URL"
API_KEY = "SUTRO_API_KEY"
#: The key `sutro-sql serve` requires from its clients.
SERVE_API_KEY = "SUTRO_SQL_SERVE_API_KEY"
#: The embedded deployment's home folder (default ./.sutro).
HOME = "SUTRO_SQL_HOME"
#: "0" silences progress bars, "1" forces them.
PROGRESS = "SUTRO_SQL_PROGRESS"
#: "record" (the default: answers come from the cache, else are computed and cached) or
#: "replay" (answers come only from the cache; a miss is an error and nothing is computed).
CACHE_MODE = "SUTRO_SQL_CACHE"
#: Megabytes of answers the SQL layer keeps in memory, for all Functions together (default 1024);
#: past it, the Function holding the most forgets its answers (the disk cache keeps them).
MEMORY_CACHE_MB = "SUTRO_SQL_MEMORY_CACHE_MB"
#: "0"/"false" turns off the `auto_batch` lift of `sutro-sql run`/`query` (on by default).
AUTO_BATCH = "SUTRO_SQL_AUTO_BATCH"
#: Overrides of the home's config.yaml.
ENGINE = "SUTRO_SQL_ENGINE"
WORKERS = "SUTRO_SQL_WORKERS"
PRICE_PER_1K_TOKENS = "SUTRO_SQL_PRICE_PER_1K_TOKENS"
#: The OpenAI-compatible server of `engine: openai:<model>` Functions.
OPENAI_BASE_URL = "OPENAI_BASE_URL"
#: S3-compatible storage for staged batch inputs (`stage := 's3://bucket/prefix'`), the standard
#: AWS names; the endpoint variables point at a non-AWS store (MinIO, R2, a local server).
AWS_ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
AWS_SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"
AWS_SESSION_TOKEN = "AWS_SESSION_TOKEN"
AWS_REGION = "AWS_REGION"
AWS_DEFAULT_REGION = "AWS_DEFAULT_REGION"
AWS_ENDPOINT_URL_S3 = "AWS_ENDPOINT_URL_S3"
AWS_ENDPOINT_URL = "AWS_ENDPOINT_URL"
#: Variables whose values are secrets: never printed (see `secrets`).
SECRET_VARIABLES = (API_KEY, SERVE_API_KEY, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)


def get(name: str) -> str | None:
    """The variable's value, stripped; None when unset or blank."""
    value = os.environ.get(name, "").strip()
    return value or None


def is_set(name: str) -> bool:
    """True when the variable exists at all, even empty (the SDK's rule for its credentials)."""
    return name in os.environ


def secrets(*extra_names: str) -> tuple[str, ...]:
    """The secret values present in the environment (API keys), for redaction."""
    return tuple(value for name in (*SECRET_VARIABLES, *extra_names) if (value := get(name)))
