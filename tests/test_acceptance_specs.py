"""Acceptance (newcomer's view): Function specs written from DESIGN.md's format alone,
loaded through the public loader, and broken specs refused with the file and the field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sutro_sql import SpecError, load_specs
from sutro_sql.functions import load_spec_file

# Three Functions written from DESIGN.md, in the three accepted file formats.
NEWCOMER_SPECS = {
    "review-sentiment.yaml": """
        name: review-sentiment
        kind: classification
        description: Classify the sentiment of a product review.
        inputs:
          - {name: review, description: The review text}
        labels: [positive, negative, mixed]
    """,
    "churn_risk.yml": """
        name: churn_risk
        kind: classification
        description: Will this customer churn?
        inputs:
          - {name: note, description: Account manager note}
          - {name: plan, required: false}
        labels:
          high: Customer is unhappy, mentions cancelling or competitors.
          low: Customer is happy or neutral.
        examples:
          - input: {note: "They will cancel next month and move to a competitor", plan: pro}
            output: high
            rationale: Mentions cancellation.
          - input: {note: "Very happy with the product, expanding seats"}
            output: low
    """,
    "invoice.parse.json": """
        {"name": "invoice.parse", "kind": "extraction",
         "description": "Extract invoice fields from an email.",
         "inputs": [{"name": "email_body"}],
         "output": {"type": "object",
           "properties": {
             "line_items": {"type": "integer", "description": "number of line items"},
             "total": {"type": "number"},
             "paid": {"type": "boolean"},
             "currency": {"type": "string", "enum": ["USD", "EUR", "GBP"]},
             "vendor": {"type": ["string", "null"], "description": "vendor name"}},
           "required": ["line_items", "total", "paid", "currency"]},
         "examples": [{"input": {"email_body": "Acme: 3 items, total 120.50 USD, paid"},
                       "output": {"line_items": 3, "total": 120.5, "paid": true,
                                  "currency": "USD", "vendor": "Acme"}}]}
    """,
}


def write_newcomer_specs(folder: Path) -> Path:
    """Write the three newcomer Functions into `folder` (created); return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for filename, text in NEWCOMER_SPECS.items():
        (folder / filename).write_text(textwrap.dedent(text))
    return folder


def _write(folder: Path, filename: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    path.write_text(textwrap.dedent(text))
    return path


def test_newcomer_specs_load_in_every_format(tmp_path):
    specs = load_specs(write_newcomer_specs(tmp_path / "functions"))
    assert sorted(specs) == ["churn_risk", "invoice.parse", "review-sentiment"]
    assert list(specs["review-sentiment"].labels) == ["positive", "negative", "mixed"]
    churn = specs["churn_risk"]
    assert churn.inputs[1].required is False
    assert churn.convert_input({"note": None}) == {"note": "", "plan": ""}
    assert specs["invoice.parse"].engine == "embedded"
    assert len({spec.revision for spec in specs.values()}) == 3


BROKEN = [
    ("kind", "name: a\nkind: regression\ninputs: [t]\nlabels: [x, y]\n"),
    ("labels", "name: b\nkind: classification\ninputs: [t]\n"),
    (
        "examples[0].output",
        "name: c\nkind: classification\ninputs: [t]\nlabels: [p, q]\n"
        "examples:\n  - input: {t: hi}\n    output: maybe\n",
    ),
    ("name", "name: '-bad name'\nkind: classification\ninputs: [t]\nlabels: [p, q]\n"),
    (
        "examples[0].output['n']",
        "name: f\nkind: extraction\ninputs: [t]\noutput:\n  type: object\n"
        "  properties: {n: {type: integer}}\nexamples:\n  - input: {t: hi}\n    output: {n: three}\n",
    ),
    ("engine", "name: g\nkind: classification\ninputs: [t]\nlabels: [p, q]\nengine: gpt4\n"),
]


@pytest.mark.parametrize(("field", "text"), BROKEN, ids=[field for field, _ in BROKEN])
def test_broken_spec_error_names_file_and_field(tmp_path, field, text):
    path = _write(tmp_path, "broken.yaml", text)
    with pytest.raises(SpecError) as raised:
        load_spec_file(path)
    message = str(raised.value)
    assert str(path) in message or "broken.yaml" in message
    assert field in message


def test_duplicate_names_name_both_files(tmp_path):
    spec = "name: d\nkind: classification\ninputs: [t]\nlabels: [p, q]\n"
    _write(tmp_path, "d1.yaml", spec)
    _write(tmp_path, "d2.yaml", spec)
    with pytest.raises(SpecError, match=r"d1\.yaml") as raised:
        load_specs(tmp_path)
    assert "d2.yaml" in str(raised.value)


def test_yes_no_labels_keep_their_names(tmp_path):
    path = _write(tmp_path, "approve.yaml", "name: approve\nkind: classification\ninputs: [t]\nlabels: [yes, no, on]\n")
    try:
        labels = list(load_spec_file(path)[0].labels)
    except SpecError:
        return  # a clear refusal is fine too
    assert labels == ["yes", "no", "on"]


def test_example_input_missing_required_field_is_refused(tmp_path):
    path = _write(
        tmp_path,
        "a.yaml",
        "name: a\nkind: classification\ninputs: [t]\nlabels: [p, q]\n"
        "examples:\n  - input: {wrong_field: hi}\n    output: p\n",
    )
    with pytest.raises(SpecError, match=r"examples\[0\]\.input"):
        load_spec_file(path)
