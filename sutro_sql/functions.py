"""Function specs: the one pydantic model for a local Function, and how inputs convert.

A spec is a YAML/JSON file (``<home>/functions/<name>.yaml``) or a
``FunctionSpec`` built in Python. Loading refuses a bad spec with an error
naming the file and the field, so a typo never turns into a silent default.
The revision is a content hash: results name it and the answer cache keys
on it, so editing a spec invalidates exactly that Function's cached answers.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import jsonschema
import pyarrow as pa
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from .errors import SpecError, ValidationError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ENGINE_PATTERN = re.compile(r"^(embedded|openai:.+)$")
SPEC_SUFFIXES = (".yaml", ".yml", ".json")


class _SpecLoader(yaml.SafeLoader):
    """YAML with YAML 1.2 booleans: only true/false are booleans, so labels such as
    `yes`, `no`, `on`, `off` stay the strings they were written as."""


_SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class FunctionInput(BaseModel):
    """One named input field of a Function."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str | None = None
    required: bool = True


class FunctionExample(BaseModel):
    """A reviewed example: the engine learns from these."""

    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any] | str
    output: Any
    rationale: str | None = None


class FunctionSpec(BaseModel):
    """A local Function: a classifier (labels) or an extractor (JSON Schema output)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["classification", "extraction"]
    description: str = ""
    inputs: list[FunctionInput] = Field(min_length=1)
    labels: dict[str, str] | None = None
    output: dict[str, Any] | None = None
    examples: list[FunctionExample] = Field(default_factory=list)
    engine: str = "embedded"

    @field_validator("name")
    @classmethod
    def _name_is_url_safe(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(f"{value!r} does not match {NAME_PATTERN.pattern}")
        return value

    @field_validator("inputs", mode="before")
    @classmethod
    def _inputs_accept_plain_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_accept_a_list(cls, value: Any) -> Any:
        if isinstance(value, list):
            if not all(isinstance(label, (str, int, float, bool)) for label in value):
                raise ValueError("a list of labels must hold plain values")
            return {convert_value(label): "" for label in value}
        if isinstance(value, dict):
            return {convert_value(k): "" if v is None else str(v) for k, v in value.items()}
        return value

    @field_validator("engine")
    @classmethod
    def _engine_is_known(cls, value: str) -> str:
        if not ENGINE_PATTERN.match(value):
            raise ValueError(f"unknown engine {value!r}: use 'embedded' or 'openai:<model>'")
        return value

    @model_validator(mode="after")
    def _kind_matches_fields(self) -> FunctionSpec:
        names = [field.name for field in self.inputs]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"inputs: duplicate input name(s) {duplicated}")
        if self.kind == "classification":
            if not self.labels:
                raise ValueError("labels: a classification Function needs at least one label")
            if self.output is not None:
                raise ValueError("output: only extraction Functions have an output schema")
        else:
            if self.labels:
                raise ValueError("labels: only classification Functions have labels")
            _check_output_schema(self.output)
        for index, example in enumerate(self.examples):
            self._check_example(index, example)
        return self

    def _check_example(self, index: int, example: FunctionExample) -> None:
        if isinstance(example.input, dict):
            unknown = sorted(set(example.input) - set(self.input_names))
            if unknown:
                raise ValueError(f"examples[{index}].input: unknown input(s) {unknown}; inputs are {self.input_names}")
            missing = [f.name for f in self.inputs if f.required and f.name not in example.input]
            if missing:
                raise ValueError(f"examples[{index}].input: missing required input(s) {missing}")
        elif len(self.inputs) != 1:
            raise ValueError(f"examples[{index}].input: a plain string needs a Function with one input")
        where = f"examples[{index}].output"
        if self.kind == "classification":
            if convert_value(example.output) not in (self.labels or {}):
                raise ValueError(f"{where}: {example.output!r} is not a declared label {list(self.labels or {})}")
            return
        try:
            jsonschema.validate(example.output, self.output or {})
        except jsonschema.ValidationError as exc:
            path = "".join(f"[{p!r}]" for p in exc.absolute_path)
            raise ValueError(f"{where}{path}: does not match the output schema: {exc.message}") from None

    @property
    def revision(self) -> str:
        """Content hash of the spec: same content, same revision, on every machine."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def input_names(self) -> list[str]:
        return [field.name for field in self.inputs]

    def convert_input(self, data: dict[str, Any] | str) -> dict[str, str]:
        """Check and convert one input row the way v1 Batch converts a row.

        Missing required field -> ValidationError naming it; extra keys are
        ignored; null -> "", objects and lists -> JSON text, anything else -> str.
        A plain string is accepted when the Function has exactly one input.
        """
        if isinstance(data, str):
            if len(self.inputs) != 1:
                raise ValidationError(
                    f"Function {self.name!r} has {len(self.inputs)} inputs "
                    f"({', '.join(self.input_names)}); pass an object, not a string."
                )
            return {self.inputs[0].name: data}
        if not isinstance(data, dict):
            raise ValidationError(f"Function input must be an object, got {type(data).__name__}.")
        missing = [f.name for f in self.inputs if f.required and f.name not in data]
        if missing:
            raise ValidationError(f"Missing required input field(s): {', '.join(missing)}.")
        return {f.name: convert_value(data.get(f.name)) for f in self.inputs}


def convert_value(value: Any) -> str:
    """null -> "", objects and lists -> compact JSON (as DuckDB's `to_json` writes them, so every
    path gives a nested value the same text), bytes -> UTF-8 text, anything else -> its string."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError(f"a binary value is not UTF-8 text (byte {exc.start}); decode it first.") from None
    if isinstance(value, float) and value != value:  # NaN from pandas means missing
        return ""
    return str(value)


def _check_output_schema(schema: dict[str, Any] | None) -> None:
    if not schema:
        raise ValueError("output: an extraction Function needs an output JSON Schema")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"output: not a valid JSON Schema: {exc.message}") from None
    if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict) or not schema["properties"]:
        raise ValueError("output: must be a JSON Schema object with at least one property")
    for field_name, prop in schema["properties"].items():
        if not isinstance(prop, dict) or not ({"type", "enum", "anyOf", "$ref"} & prop.keys()):
            raise ValueError(f"output.properties.{field_name}: needs a 'type' or an 'enum'")


def load_spec_file(path: str | Path) -> list[FunctionSpec]:
    """Load one spec file (a mapping, or a list of mappings); errors name the file and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        document = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=_SpecLoader)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise SpecError(f"cannot parse: {exc}", path=str(path)) from None
    documents = document if isinstance(document, list) else [document]
    specs = []
    for index, item in enumerate(documents):
        if not isinstance(item, dict):
            raise SpecError("a spec must be a mapping of fields", path=str(path))
        specs.append(parse_spec(item, path=str(path) if len(documents) == 1 else f"{path}[{index}]"))
    return specs


def parse_spec(data: dict[str, Any], *, path: str | None = None) -> FunctionSpec:
    """Validate a spec mapping; a failure becomes a SpecError naming the field."""
    try:
        return FunctionSpec.model_validate(data)
    except PydanticValidationError as exc:
        error = exc.errors()[0]
        location = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        if not location and ": " in message:  # model-level checks name their field first
            location, message = message.split(": ", 1)
        raise SpecError(message, path=path, field=location or None) from None


def load_specs(folder: str | Path) -> dict[str, FunctionSpec]:
    """Load every spec in a folder; duplicate names across files are refused."""
    folder = Path(folder)
    specs: dict[str, FunctionSpec] = {}
    origin: dict[str, Path] = {}
    if not folder.is_dir():
        return specs
    for path in sorted(p for p in folder.iterdir() if p.suffix in SPEC_SUFFIXES and p.is_file()):
        for spec in load_spec_file(path):
            if spec.name in specs:
                raise SpecError(
                    f"duplicate Function name {spec.name!r} (also defined in {origin[spec.name]})",
                    path=str(path),
                    field="name",
                )
            specs[spec.name] = spec
            origin[spec.name] = path
    return specs


_JSON_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
}


def arrow_type(schema: dict[str, Any]) -> pa.DataType:
    """The Arrow type a JSON Schema value maps to (unknown or mixed -> JSON text)."""
    json_type = schema.get("type")
    if isinstance(json_type, list):  # ["string", "null"] is a nullable string
        non_null = [t for t in json_type if t != "null"]
        json_type = non_null[0] if len(non_null) == 1 else None
    if json_type is None and "enum" in schema:
        kinds = {type(v) for v in schema["enum"] if v is not None}
        json_type = "string" if kinds == {str} else None
    if json_type in _JSON_TYPES:
        return _JSON_TYPES[json_type]
    if json_type == "array" and isinstance(schema.get("items"), dict):
        return pa.list_(arrow_type(schema["items"]))
    if json_type == "object" and isinstance(schema.get("properties"), dict):
        return pa.struct([pa.field(k, arrow_type(v)) for k, v in schema["properties"].items()])
    return pa.string()  # JSON text


def output_arrow_schema(spec: FunctionSpec) -> pa.Schema:
    """Typed columns for an extraction Function's output fields."""
    properties = (spec.output or {}).get("properties", {})
    return pa.schema([pa.field(name, arrow_type(prop)) for name, prop in properties.items()])
