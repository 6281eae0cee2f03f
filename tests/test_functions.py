"""Function specs: the DESIGN.md format loads as written, and every bad spec is
refused with an error naming the file and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from sutro_sql.errors import SpecError, ValidationError
from sutro_sql.functions import FunctionSpec, arrow_type, load_spec_file, load_specs, output_arrow_schema, parse_spec

DESIGN_EXAMPLE = """\
name: lead-qualifier              # ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$
kind: classification              # or: extraction
description: Return one lead qualification label.
inputs:
  - {name: query, description: What the lead is looking for}
  - {name: region}
labels:                           # classification
  qualified: Budget, authority and an active evaluation.
  not_qualified: Anything else.
# output: <JSON Schema object>   # extraction: fields, types, enums, descriptions
examples:                         # reviewed examples; the engine learns from them
  - input: {query: Find CISOs evaluating AI vendors, region: APAC}
    output: qualified
    rationale: Security leadership is actively evaluating vendors.
engine: embedded                  # or openai:<model>
"""

EXTRACTOR = {
    "name": "invoice-fields",
    "kind": "extraction",
    "inputs": [{"name": "text"}],
    "output": {
        "type": "object",
        "properties": {
            "total": {"type": "number", "description": "Invoice total"},
            "currency": {"type": "string", "enum": ["USD", "EUR"]},
            "paid": {"type": "boolean"},
            "lines": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    },
    "examples": [{"input": {"text": "Total 10 USD"}, "output": {"total": 10, "currency": "USD"}}],
}


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_design_md_format_loads_as_written(tmp_path):
    [spec] = load_spec_file(write(tmp_path, "lead.yaml", DESIGN_EXAMPLE))
    assert spec.name == "lead-qualifier"
    assert spec.kind == "classification"
    assert spec.input_names == ["query", "region"]
    assert all(field.required for field in spec.inputs)
    assert spec.labels == {
        "qualified": "Budget, authority and an active evaluation.",
        "not_qualified": "Anything else.",
    }
    assert spec.examples[0].rationale.startswith("Security")
    assert spec.engine == "embedded"


def test_yaml_yes_no_labels_stay_strings(tmp_path):
    path = write(
        tmp_path, "approve.yaml", "name: approve\nkind: classification\ninputs: [t]\nlabels: [yes, no, on, true]\n"
    )
    assert list(load_spec_file(path)[0].labels) == ["yes", "no", "on", "true"]


def test_labels_may_be_a_list_and_inputs_plain_names():
    spec = parse_spec({"name": "s", "kind": "classification", "inputs": ["text"], "labels": ["pos", "neg"]})
    assert spec.labels == {"pos": "", "neg": ""}
    assert spec.inputs[0].name == "text" and spec.inputs[0].required


def test_yml_and_json_files_load_from_a_folder(tmp_path):
    write(tmp_path, "a.yml", DESIGN_EXAMPLE)
    write(tmp_path, "b.json", json.dumps(EXTRACTOR))
    write(tmp_path, "notes.txt", "not a spec")
    assert sorted(load_specs(tmp_path)) == ["invoice-fields", "lead-qualifier"]


def test_revision_is_a_content_hash(tmp_path):
    first = parse_spec(EXTRACTOR)
    assert first.revision == parse_spec(json.loads(json.dumps(EXTRACTOR))).revision
    changed = parse_spec({**EXTRACTOR, "description": "new wording"})
    assert changed.revision != first.revision
    assert len(first.revision) == 16


@pytest.mark.parametrize(
    "change, field, message",
    [
        ({"kind": "regression"}, "kind", "classification"),
        ({"labels": None}, "labels", "at least one label"),
        ({"name": "has space"}, "name", "does not match"),
        ({"name": "-leading-dash"}, "name", "does not match"),
        ({"name": "x" * 129}, "name", "does not match"),
        ({"engine": "gpt"}, "engine", "unknown engine"),
        ({"lables": {"a": "b"}}, "lables", "unknown field"),
        ({"inputs": []}, "inputs", "at least 1"),
        ({"inputs": ["q", "q"]}, "inputs", "duplicate"),
        (
            {"examples": [{"input": {"query": "x"}, "output": "maybe"}]},
            "examples[0].output",
            "not a declared label",
        ),
        ({"output": {"type": "object", "properties": {"a": {"type": "string"}}}}, "output", "only extraction"),
        ({"examples": [{"input": {"querry": "x"}, "output": "a"}]}, "examples[0].input", "unknown input"),
        ({"examples": [{"input": {}, "output": "a"}]}, "examples[0].input", "missing required input"),
    ],
)
def test_bad_classification_specs_name_the_file_and_field(tmp_path, change, field, message):
    data = {"name": "ok", "kind": "classification", "inputs": ["query"], "labels": {"a": "A", "b": "B"}}
    data.update(change)
    path = write(tmp_path, "bad.json", json.dumps(data))
    with pytest.raises(SpecError) as raised:
        load_spec_file(path)
    assert raised.value.path == str(path)
    assert raised.value.field == field
    assert message in str(raised.value)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    "change, field, message",
    [
        ({"output": None}, "output", "needs an output JSON Schema"),
        ({"output": {"type": "string"}}, "output", "JSON Schema object"),
        ({"output": {"type": "object", "properties": {"a": {"description": "?"}}}}, "output.properties.a", "type"),
        ({"output": {"type": "object", "properties": {"a": {"type": "strang"}}}}, "output", "not a valid JSON Schema"),
        ({"labels": ["a"]}, "labels", "only classification"),
        (
            {"examples": [{"input": {"text": "t"}, "output": {"total": "ten"}}]},
            "examples[0].output['total']",
            "does not match the output schema",
        ),
        (
            {"examples": [{"input": {"text": "t"}, "output": {"currency": "GBP"}}]},
            "examples[0].output['currency']",
            "does not match the output schema",
        ),
    ],
)
def test_bad_extraction_specs_name_the_field(change, field, message):
    with pytest.raises(SpecError) as raised:
        parse_spec({**EXTRACTOR, **change}, path="x.yaml")
    assert raised.value.field == field
    assert message in str(raised.value)


def test_duplicate_names_across_files_are_refused(tmp_path):
    write(tmp_path, "one.yaml", DESIGN_EXAMPLE)
    write(tmp_path, "two.yaml", DESIGN_EXAMPLE)
    with pytest.raises(SpecError, match="duplicate Function name 'lead-qualifier'") as raised:
        load_specs(tmp_path)
    assert raised.value.field == "name"
    assert raised.value.path.endswith("two.yaml")


def test_unparsable_file_names_the_file(tmp_path):
    path = write(tmp_path, "broken.yaml", "name: [unclosed")
    with pytest.raises(SpecError, match="cannot parse") as raised:
        load_spec_file(path)
    assert raised.value.path == str(path)


def test_input_conversion_matches_batch_rows():
    spec = parse_spec(
        {
            "name": "conv",
            "kind": "classification",
            "inputs": ["a", "b", "c", "d", {"name": "e", "required": False}],
            "labels": ["x"],
        }
    )
    row = spec.convert_input({"a": None, "b": {"k": [1, 2]}, "c": 3.5, "d": True, "ignored": 1})
    assert row == {"a": "", "b": '{"k":[1,2]}', "c": "3.5", "d": "true", "e": ""}


def test_missing_required_input_names_the_field():
    spec = parse_spec({"name": "m", "kind": "classification", "inputs": ["subject", "body"], "labels": ["x"]})
    with pytest.raises(ValidationError, match=r"Missing required input field\(s\): body\."):
        spec.convert_input({"subject": "hi"})


def test_a_plain_string_is_accepted_only_for_one_input():
    one = parse_spec({"name": "o", "kind": "classification", "inputs": ["text"], "labels": ["x"]})
    assert one.convert_input("hello") == {"text": "hello"}
    two = parse_spec({"name": "t", "kind": "classification", "inputs": ["a", "b"], "labels": ["x"]})
    with pytest.raises(ValidationError, match="pass an object"):
        two.convert_input("hello")


def test_json_schema_types_map_to_arrow():
    schema = output_arrow_schema(FunctionSpec.model_validate(EXTRACTOR))
    assert schema.field("total").type == pa.float64()
    assert schema.field("currency").type == pa.string()
    assert schema.field("paid").type == pa.bool_()
    assert schema.field("lines").type == pa.int64()
    assert schema.field("tags").type == pa.list_(pa.string())
    assert arrow_type({"type": ["integer", "null"]}) == pa.int64()
    assert arrow_type({"enum": ["a", "b"]}) == pa.string()
    assert arrow_type({"type": "object"}) == pa.string()


def test_example_functions_in_the_repo_load():
    specs = load_specs(Path(__file__).resolve().parent.parent / "examples" / "functions")
    assert {"lead-qualifier", "ticket-triage", "ticket-extractor"} <= set(specs)
