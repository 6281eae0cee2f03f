"""What the model is told: a Function turned into chat messages.

The prompt is the Function itself, so a Function's wording is the one place its behaviour is
tuned: its description, inputs, labels (with their descriptions) or output schema in the
system turn, the reviewed examples as few-shot user/assistant turns, then the row. The
repair turn after an invalid reply is worded here too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ...functions import FunctionExample, FunctionSpec, convert_value


def render_input(spec: FunctionSpec, data: dict[str, Any] | str) -> str:
    """An input row as the user turn: one ``name: value`` line per input."""
    if isinstance(data, str):
        data = {spec.inputs[0].name: data}
    return "\n".join(f"{name}: {convert_value(data.get(name))}" for name in spec.input_names)


def system_prompt(spec: FunctionSpec) -> str:
    """The task, the inputs, the labels or schema, and the reply shape asked for."""
    lines = [spec.description or f"Apply the Function {spec.name!r}.", "", "The input has these fields:"]
    lines += [f"- {field.name}" + (f": {field.description}" if field.description else "") for field in spec.inputs]
    if spec.kind == "classification":
        lines += ["", "Answer with exactly one of these labels:"]
        lines += [f"- {label}" + (f": {text}" if text else "") for label, text in (spec.labels or {}).items()]
        lines += [
            "",
            'Reply with only a JSON object {"label": <one of the labels>, "rationale": <one short sentence '
            "naming what in the input decides the label>}.",
        ]
    else:
        lines += [
            "",
            "Extract the fields described by this JSON Schema from the input; use null where the input "
            "does not support a value:",
            json.dumps(spec.output, ensure_ascii=False),
            "",
            'Reply with only a JSON object {"answer": <an object that matches the schema>, "rationale": '
            "<one short sentence naming the evidence in the input>}.",
        ]
    return "\n".join(lines)


def build_messages(
    spec: FunctionSpec, row: dict[str, Any] | str, *, examples: Sequence[FunctionExample] | None = None
) -> list[dict[str, str]]:
    """System prompt, the reviewed examples (default: all of the spec's) as few-shot turns,
    then the row."""
    messages = [{"role": "system", "content": system_prompt(spec)}]
    for example in spec.examples if examples is None else examples:
        if spec.kind == "classification":
            reply = {"label": str(example.output), "rationale": example.rationale or ""}
        else:
            reply = {"answer": example.output, "rationale": example.rationale or ""}
        messages.append({"role": "user", "content": render_input(spec, example.input)})
        messages.append({"role": "assistant", "content": json.dumps(reply, ensure_ascii=False)})
    messages.append({"role": "user", "content": render_input(spec, row)})
    return messages


def repair_messages(
    spec: FunctionSpec, messages: list[dict[str, str]], reply: str, problem: str
) -> list[dict[str, str]]:
    """`messages` followed by the invalid `reply` and a user turn saying what is wrong with it."""
    if spec.kind == "classification":
        expected = "one of the labels"
    else:
        expected = '{"answer": <an object matching the JSON Schema>, "rationale": <one short sentence>}'
    instruction = f"That reply is invalid: {problem}. Reply again with only the corrected JSON object ({expected})."
    return [*messages, {"role": "assistant", "content": reply}, {"role": "user", "content": instruction}]
