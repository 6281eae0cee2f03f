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
from dataclasses import dataclass
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


class CascadeSpec(BaseModel):
    """`cascade: {to: <function>, below: <p>}` (or `target_accuracy: <p>`, calibrated on the
    spec's reviewed examples): where calls that name no cascade escalate unsure answers."""

    model_config = ConfigDict(extra="forbid")

    to: str = Field(min_length=1)
    below: float | None = Field(default=None, ge=0, le=1)
    target_accuracy: float | None = Field(default=None, ge=0, lt=1)

    @model_validator(mode="after")
    def _one_threshold(self) -> CascadeSpec:
        if (self.below is None) == (self.target_accuracy is None):
            raise ValueError("cascade: give exactly one of below or target_accuracy")
        return self


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
    cascade: CascadeSpec | None = None

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
            if not all(label is None or isinstance(label, (str, int, float, bool)) for label in value):
                raise ValueError("a list of labels must hold plain values")
            return dict.fromkeys(_label_names(value), "")
        if isinstance(value, dict):
            descriptions = ("" if v is None else str(v) for v in value.values())
            return dict(zip(_label_names(list(value)), descriptions, strict=True))
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
        if self.cascade is not None and self.cascade.to == self.name:
            raise ValueError("cascade.to: a Function cannot escalate to itself")
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
        """Content hash of the spec: same content, same revision, on every machine. The cascade
        is left out: where unsure answers go does not change this Function's answers."""
        canonical = json.dumps(self.model_dump(mode="json", exclude={"cascade"}), sort_keys=True, separators=(",", ":"))
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


def _label_names(labels: list[Any]) -> list[str]:
    """Label names as text; a null, empty or repeated name is refused rather than dropped or merged."""
    if any(label is None for label in labels):
        raise ValueError("a label name cannot be null")
    names = [convert_value(label) for label in labels]
    if any(not name.strip() for name in names):
        raise ValueError("a label name cannot be empty")
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise ValueError(f"duplicate label name(s) {duplicated}")
    return names


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


@dataclass(frozen=True)
class SpecFile:
    """One spec file as read: its Functions, or the error that makes it unusable.

    `names` are the Functions the file defines; for a broken file, the names it can be read
    to claim, else its stem, so asking for that Function reports the file instead of
    "not found"."""

    path: Path
    names: tuple[str, ...]
    specs: tuple[FunctionSpec, ...] = ()
    error: SpecError | None = None


@dataclass(frozen=True)
class SpecFolder:
    """Every spec file of a folder: the Functions that load, and the names that cannot be used
    (claimed by a broken file, or defined by two files) with the error to report for each."""

    files: tuple[SpecFile, ...]
    functions: dict[str, FunctionSpec]
    broken: dict[str, SpecError]
    errors: tuple[SpecError, ...]  # each problem once, in file order


def spec_paths(folder: str | Path) -> list[Path]:
    """The spec files of a folder, sorted (none if the folder does not exist)."""
    try:
        return sorted(p for p in Path(folder).iterdir() if p.suffix in SPEC_SUFFIXES and p.is_file())
    except (FileNotFoundError, NotADirectoryError):
        return []


def load_spec_file(path: str | Path) -> list[FunctionSpec]:
    """Load one spec file (a mapping, or a list of mappings); errors name the file, the field
    and, for YAML, the line and column."""
    read = read_spec_file(path)
    if read.error is not None:
        raise read.error
    return list(read.specs)


def read_spec_file(path: str | Path) -> SpecFile:
    """One spec file as a SpecFile: never raises for a bad file, the error is in `.error`."""
    path = Path(path)
    try:
        document = _read_document(path)
    except SpecError as exc:
        return SpecFile(path, names=(path.stem,), error=exc)
    try:
        specs = _parse_documents(document, path)
    except SpecError as exc:
        return SpecFile(path, names=_claimed_names(document.data, path), error=exc)
    return SpecFile(path, names=tuple(spec.name for spec in specs), specs=specs)


def load_spec_folder(folder: str | Path) -> SpecFolder:
    """Every spec file of a folder: a broken file, or a name two files define, makes only those
    names unusable; the other Functions load."""
    files = tuple(read_spec_file(path) for path in spec_paths(folder))
    functions: dict[str, FunctionSpec] = {}
    broken: dict[str, SpecError] = {}
    errors: list[SpecError] = []
    origin: dict[str, Path] = {}
    for read in files:
        if read.error is not None:
            errors.append(read.error)
        for index, name in enumerate(read.names):
            if name in origin:
                duplicate = SpecError(
                    f"duplicate Function name {name!r} (also defined in {origin[name]})",
                    path=str(read.path),
                    field="name",
                )
                errors.append(duplicate)
                broken[name] = duplicate
                functions.pop(name, None)
                continue
            origin[name] = read.path
            if read.error is not None:
                broken[name] = read.error
            else:
                functions[name] = read.specs[index]
    return SpecFolder(files=files, functions=functions, broken=broken, errors=tuple(errors))


def load_specs(folder: str | Path) -> dict[str, FunctionSpec]:
    """Load every spec in a folder, all or nothing: the first bad file, or a duplicate name
    across files, is refused. (A deployment uses `load_spec_folder`, which keeps the good ones.)"""
    loaded = load_spec_folder(folder)
    if loaded.errors:
        raise loaded.errors[0]
    return loaded.functions


def parse_spec(data: dict[str, Any], *, path: str | None = None) -> FunctionSpec:
    """Validate a spec mapping; a failure becomes a SpecError naming the field."""
    return _parse_spec(data, path=path, node=None)


@dataclass(frozen=True)
class _Document:
    """A spec file's data and, for YAML, per spec in it: its node (for the line and column of a
    problem) and the first key given twice in one of its mappings (PyYAML keeps the last one
    silently, so `labels: {a: x, a: y}` would lose a label)."""

    data: Any
    nodes: tuple[yaml.Node | None, ...] = ()
    repeated: tuple[tuple[str, str, yaml.Mark] | None, ...] = ()


def _read_document(path: Path) -> _Document:
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            return _Document(json.loads(text, object_pairs_hook=_json_object))
        loader = _SpecLoader(text)
        try:
            node = loader.get_single_node()
            nodes = tuple(node.value) if isinstance(node, yaml.SequenceNode) else (node,)
            repeated = tuple(_repeated_key(item) for item in nodes)  # before merge keys are expanded in place
            return _Document(loader.construct_document(node) if node is not None else None, nodes, repeated)
        finally:
            loader.dispose()
    except json.JSONDecodeError as exc:
        raise SpecError(f"cannot parse: {exc.msg} (line {exc.lineno}, column {exc.colno})", path=str(path)) from None
    except yaml.MarkedYAMLError as exc:
        problem = ": ".join(part for part in (exc.context, exc.problem) if part) or "not valid YAML"
        raise SpecError(f"cannot parse: {problem}{_at(exc.problem_mark or exc.context_mark)}", path=str(path)) from None
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise SpecError(f"cannot parse: {exc}", path=str(path)) from None


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice (json.loads would keep the last silently)."""
    keys = [key for key, _ in pairs]
    repeated = next((key for index, key in enumerate(keys) if key in keys[:index]), None)
    if repeated is not None:
        raise ValueError(f"duplicate key {repeated!r}")
    return dict(pairs)


def _parse_documents(document: _Document, path: Path) -> tuple[FunctionSpec, ...]:
    items = document.data if isinstance(document.data, list) else [document.data]
    specs = []
    for index, item in enumerate(items):
        where = str(path) if len(items) == 1 else f"{path}[{index}]"
        if not isinstance(item, dict):
            raise SpecError("a spec must be a mapping of fields", path=str(path))
        node = document.nodes[index] if index < len(document.nodes) else None
        repeated = document.repeated[index] if index < len(document.repeated) else None
        if repeated is not None:
            field, key, mark = repeated
            raise SpecError(f"duplicate key {key!r}{_at(mark)}", path=where, field=field or key)
        specs.append(_parse_spec(item, path=where, node=node))
    return tuple(specs)


def _parse_spec(data: dict[str, Any], *, path: str | None, node: yaml.Node | None) -> FunctionSpec:
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
        raise SpecError(message + _at(_mark_of(node, location)), path=path, field=location or None) from None


def _claimed_names(document: Any, path: Path) -> tuple[str, ...]:
    """The Function names a broken document can still be read to define, else the file's stem."""
    items = document if isinstance(document, list) else [document]
    names = tuple(item["name"] for item in items if isinstance(item, dict) and isinstance(item.get("name"), str))
    return names or (path.stem,)


_MERGE_TAG = "tag:yaml.org,2002:merge"
_FIELD_PART = re.compile(r"\[(\d+)\]|\['([^']*)'\]|([^.\[\]]+)")


def _repeated_key(node: yaml.Node | None) -> tuple[str, str, yaml.Mark] | None:
    """(field, key, mark) of the first key given twice in one mapping under `node`."""
    pending: list[tuple[yaml.Node, str]] = [(node, "")] if node is not None else []
    visited: set[int] = set()
    while pending:
        current, field = pending.pop(0)
        if id(current) in visited:  # an alias: already checked
            continue
        visited.add(id(current))
        if isinstance(current, yaml.MappingNode):
            seen: set[tuple[str, str]] = set()
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != _MERGE_TAG:
                    if (key.tag, key.value) in seen:
                        return field, key.value, key.start_mark
                    seen.add((key.tag, key.value))
                    pending.append((value, f"{field}.{key.value}" if field else key.value))
        elif isinstance(current, yaml.SequenceNode):
            pending.extend((item, f"{field}[{index}]") for index, item in enumerate(current.value))
    return None


def _mark_of(node: yaml.Node | None, field: str) -> yaml.Mark | None:
    """Where `field` (e.g. ``examples[0].output['total']`` or ``inputs.1.name``) is written in
    a YAML document: the deepest part of it that is there."""
    mark = None
    for match in _FIELD_PART.finditer(field):
        part = next(group for group in match.groups() if group is not None)
        if isinstance(node, yaml.MappingNode):
            found = [
                (key, value) for key, value in node.value if isinstance(key, yaml.ScalarNode) and key.value == part
            ]
            if not found:
                break
            key, node = found[-1]
            mark = key.start_mark
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            mark = node.start_mark
        else:
            break
    return mark


def _at(mark: yaml.Mark | None) -> str:
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""


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
