"""Settings of a local deployment home (``<home>/config.yaml``), with env overrides.

The home folder (default ``./.sutro``, env ``SUTRO_SQL_HOME``) holds the
Function specs, the job store, the answer cache and this optional file::

    price_per_1k_tokens: 0.0005     # USD, for cost estimates and job_cost
    workers: 2                      # batch worker threads per process
    engine: null                    # "module:attr" engine factory used for every Function
    openai:                         # for `engine: openai:<model>` Functions
      base_url: http://127.0.0.1:8000/v1
      api_key_env: OPENAI_API_KEY   # name of the env var holding the key (never the key itself)
      max_concurrency: 8
      timeout: 60
      calibration_temperature: auto # fitted on the reviewed examples, or a fixed T (> 1 softens)
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from . import environment
from .errors import ConfigurationError

DEFAULT_HOME = ".sutro"


class OpenAISettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = Field(default=8, ge=1)
    timeout: float = Field(default=60.0, gt=0)
    # classification p ** (1/T), renormalized: a fixed T, or "auto" to fit T on the reviewed examples
    calibration_temperature: float | Literal["auto"] = "auto"

    @field_validator("calibration_temperature", mode="before")
    @classmethod
    def _positive_or_auto(cls, value: Any) -> float | str:
        if value == "auto":
            return value
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if 0 < number < math.inf:
                return number
        raise ValueError(f"expected a positive number or 'auto', got {value!r}")


class HomeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    price_per_1k_tokens: float = Field(default=0.0005, ge=0)
    workers: int = Field(default=2, ge=1)
    engine: str | None = None
    openai: OpenAISettings = Field(default_factory=OpenAISettings)

    @classmethod
    def load(cls, home: str | Path) -> HomeConfig:
        """Read ``<home>/config.yaml`` (if any), then apply env overrides:
        SUTRO_SQL_ENGINE, SUTRO_SQL_WORKERS, SUTRO_SQL_PRICE_PER_1K_TOKENS, OPENAI_BASE_URL."""
        path = Path(home) / "config.yaml"
        data: dict[str, Any] = {}
        if path.exists():
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError as exc:
                raise ConfigurationError(f"{path}: cannot parse: {exc}") from None
        for variable, field in (
            (environment.ENGINE, "engine"),
            (environment.WORKERS, "workers"),
            (environment.PRICE_PER_1K_TOKENS, "price_per_1k_tokens"),
        ):
            if environment.get(variable):
                data[field] = environment.get(variable)
        if environment.get(environment.OPENAI_BASE_URL):
            data.setdefault("openai", {})["base_url"] = environment.get(environment.OPENAI_BASE_URL)
        try:
            return cls.model_validate(data)
        except PydanticValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(p) for p in error["loc"])
            raise ConfigurationError(f"{path}: {field}: {error['msg']}") from None


def resolve_home(home: str | Path | None = None) -> Path:
    """Explicit argument, else SUTRO_SQL_HOME, else ./.sutro; returned absolute."""
    return Path(home or environment.get(environment.HOME) or DEFAULT_HOME).expanduser().resolve()


def load_object(reference: str) -> Any:
    """Import "package.module:attr" (used for pluggable engines)."""
    module_name, _, attr = reference.partition(":")
    if not module_name or not attr:
        raise ConfigurationError(f"expected 'module:attr', got {reference!r}")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"cannot load {reference!r}: {exc}") from None
