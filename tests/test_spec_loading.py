"""Issue 15: one malformed spec file no longer makes every Function unusable, and bad labels
(duplicated, empty, null) are refused naming the field.

A broken file's Functions are reported with its file, line and column when asked for by name;
every other Function keeps working, through LocalBackend and over the served v1 API.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sutro_sql.errors import SpecError, SutroSQLError
from sutro_sql.functions import load_spec_file, load_spec_folder, load_specs, parse_spec

MOOD = "name: mood\nkind: classification\ninputs: [text]\nlabels: [happy, sad]\n"
UNPARSABLE = "name: broken\nkind: classification\ninputs: [text\nlabels: [a, b]\n"  # the [ never closes


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# -- labels: duplicated, empty, null -----------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (["a", "b", "a"], "duplicate label name(s) ['a']"),
        ({"1": "one", 1: "also one"}, "duplicate label name(s) ['1']"),
        (["a", None], "a label name cannot be null"),
        ({None: "no name", "b": ""}, "a label name cannot be null"),
        (["a", ""], "a label name cannot be empty"),
        ({"  ": "blank", "b": ""}, "a label name cannot be empty"),
    ],
    ids=[
        "list-duplicate",
        "mapping-duplicate-after-conversion",
        "list-null",
        "mapping-null",
        "list-empty",
        "mapping-blank",
    ],
)
def test_bad_label_names_are_refused_naming_the_labels_field(labels, message):
    with pytest.raises(SpecError) as raised:
        parse_spec({"name": "m", "kind": "classification", "inputs": ["t"], "labels": labels}, path="m.yaml")
    assert raised.value.field == "labels"
    assert message in str(raised.value)


def test_a_label_repeated_in_a_yaml_mapping_is_refused_with_its_line(tmp_path):
    text = "name: m\nkind: classification\ninputs: [t]\nlabels:\n  billing: Money\n  bug: Errors\n  billing: Again\n"
    with pytest.raises(SpecError) as raised:
        load_spec_file(write(tmp_path, "m.yaml", text))
    assert raised.value.field == "labels"
    assert "duplicate key 'billing' (line 7, column 3)" in str(raised.value)


def test_a_field_repeated_at_the_top_of_a_yaml_spec_is_refused(tmp_path):
    with pytest.raises(SpecError) as raised:
        load_spec_file(write(tmp_path, "m.yaml", MOOD + "name: other\n"))
    assert raised.value.field == "name"
    assert "duplicate key 'name' (line 5, column 1)" in str(raised.value)


def test_a_key_repeated_in_a_json_spec_is_refused(tmp_path):
    text = '{"name": "m", "kind": "classification", "inputs": ["t"], "labels": {"a": "", "a": "x"}}'
    with pytest.raises(SpecError, match="duplicate key 'a'"):
        load_spec_file(write(tmp_path, "m.json", text))


def test_yaml_merge_keys_are_not_mistaken_for_duplicates(tmp_path):
    text = "- &common {name: a, kind: classification, inputs: [t], labels: [x]}\n- <<: *common\n  name: b\n"
    specs = load_spec_file(write(tmp_path, "m.yaml", text))
    assert [(spec.name, list(spec.labels)) for spec in specs] == [("a", ["x"]), ("b", ["x"])]


# -- line and column ---------------------------------------------------------------------------


def test_a_yaml_syntax_error_names_the_file_line_and_column(tmp_path):
    path = write(tmp_path, "broken.yaml", UNPARSABLE)
    with pytest.raises(SpecError) as raised:
        load_spec_file(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: cannot parse: ")
    assert "(line 4, column 7)" in message
    assert "\n" not in message


def test_a_json_syntax_error_names_the_line_and_column(tmp_path):
    with pytest.raises(SpecError, match=r"cannot parse: .* \(line 2, column 1\)"):
        load_spec_file(write(tmp_path, "broken.json", '{"name": "x",\n}'))


def test_an_invalid_field_in_yaml_names_its_line_and_column(tmp_path):
    path = write(tmp_path, "g.yaml", MOOD + "engine: gpt4\n")
    with pytest.raises(SpecError) as raised:
        load_spec_file(path)
    assert raised.value.field == "engine"
    assert "unknown engine 'gpt4'" in str(raised.value) and "(line 5, column 1)" in str(raised.value)


def test_a_nested_field_is_located_where_it_is_written(tmp_path):
    text = MOOD + "examples:\n  - input: {text: hi}\n    output: happy\n  - input: {txt: hi}\n    output: sad\n"
    with pytest.raises(SpecError) as raised:
        load_spec_file(write(tmp_path, "e.yaml", text))
    assert raised.value.field == "examples[1].input"
    assert "(line 8, column 5)" in str(raised.value)


# -- a folder with a broken file ---------------------------------------------------------------


def test_a_folder_loads_its_good_specs_beside_a_broken_file(tmp_path):
    write(tmp_path, "mood.yaml", MOOD)
    write(tmp_path, "broken.yaml", UNPARSABLE)
    write(tmp_path, "twice.yaml", "name: twice\nkind: classification\ninputs: [t]\nlabels: [a, a]\n")
    loaded = load_spec_folder(tmp_path)
    assert list(loaded.functions) == ["mood"]
    assert sorted(loaded.broken) == ["broken", "twice"]  # unreadable name: the file's stem
    assert "line 4, column 7" in str(loaded.broken["broken"])
    assert "duplicate label name(s) ['a']" in str(loaded.broken["twice"])
    assert len(loaded.errors) == 2


def test_a_name_two_files_define_is_unusable_and_the_others_load(tmp_path):
    write(tmp_path, "a.yaml", MOOD)
    write(tmp_path, "b.yaml", MOOD)
    write(tmp_path, "c.yaml", MOOD.replace("mood", "calm"))
    loaded = load_spec_folder(tmp_path)
    assert list(loaded.functions) == ["calm"]
    assert "duplicate Function name 'mood' (also defined in" in str(loaded.broken["mood"])


def test_load_specs_still_refuses_a_folder_with_a_broken_file(tmp_path):
    write(tmp_path, "mood.yaml", MOOD)
    write(tmp_path, "broken.yaml", UNPARSABLE)
    with pytest.raises(SpecError, match="broken.yaml: cannot parse"):
        load_specs(tmp_path)


# -- the local deployment ----------------------------------------------------------------------


@pytest.fixture
def broken_home(home):
    """The example home plus a file that does not parse and one whose labels repeat."""
    write(home / "functions", "broken.yaml", UNPARSABLE)
    write(home / "functions", "twice.yaml", "name: twice\nkind: classification\ninputs: [t]\nlabels: [a, a]\n")
    return home


def test_local_backend_answers_the_good_functions_beside_a_broken_file(broken_home, local_backend):
    answer = local_backend.run_function("ticket-triage", {"subject": "Refund", "body": "billing trouble"})
    assert answer["response"] == "billing"
    assert sorted(spec.name for spec in local_backend.functions()) == [
        "lead-qualifier",
        "ticket-extractor",
        "ticket-triage",
    ]


@pytest.mark.parametrize(
    ("name", "fragments"),
    [("broken", ["broken.yaml: cannot parse", "(line 4, column 7)"]), ("twice", ["twice.yaml: labels: duplicate"])],
)
def test_asking_for_a_broken_function_reports_its_file(broken_home, local_backend, name, fragments):
    with pytest.raises(SpecError) as raised:
        local_backend.run_function(name, "hello")
    assert all(fragment in str(raised.value) for fragment in fragments)
    with pytest.raises(SpecError):
        local_backend.get_function_spec(name)


def test_fixing_a_broken_file_makes_its_function_usable(broken_home, local_backend):
    with pytest.raises(SpecError):
        local_backend.get_function_spec("twice")
    write(broken_home / "functions", "twice.yaml", "name: twice\nkind: classification\ninputs: [t]\nlabels: [a, b]\n")
    assert list(local_backend.get_function_spec("twice").labels) == ["a", "b"]


def test_publishing_a_good_spec_replaces_the_broken_file_that_claimed_its_name(broken_home, local_backend):
    published = local_backend.publish({"name": "twice", "kind": "classification", "inputs": ["t"], "labels": ["x"]})
    assert list(published.labels) == ["x"]
    assert sorted(p.name for p in (broken_home / "functions").glob("twice*")) == ["twice.yaml"]


def test_the_served_api_answers_beside_a_broken_file_and_names_it(deployment, remote):
    functions = Path(deployment.home) / "functions"
    broken = write(functions, "broken.yaml", UNPARSABLE)
    try:
        with pytest.raises(SutroSQLError) as raised:
            remote.run_function("broken", "hello")
        assert raised.value.code == "invalid_spec"
        assert "broken.yaml: cannot parse" in str(raised.value) and "(line 4, column 7)" in str(raised.value)
        answer = remote.run_function("ticket-triage", {"subject": "Refund", "body": "billing trouble"})
        assert answer["response"] == "billing"
    finally:
        broken.unlink()
