"""Model replies read: validated against the Function, and log-probabilities made probabilities.

A reply is accepted only if it is what the Function allows: one of the labels, or an object
valid against the output schema (wrapped as ``{"answer": ..., "rationale": ...}``, or bare from
a server that ignores the wrapper). Anything else becomes a sentence saying what is wrong,
which the engine sends back in its one repair turn. Confidence comes from the reply's tokens:
for classification the top log-probabilities at the label's tokens give every label a
probability; for extraction the answer's tokens give a geometric-mean token probability.
Without log-probabilities, stated priors stand in.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import jsonschema

from ...functions import FunctionSpec
from .calibration import temper
from .transport import Completion

#: Classification confidence when the server returns no log-probabilities: a stated
#: prior for a constrained greedy answer, not a measurement. The other labels share the rest.
CONFIDENCE_WITHOUT_LOGPROBS = 0.7
#: Extraction confidence when the server returns no log-probabilities (a stated prior).
EXTRACTION_CONFIDENCE_WITHOUT_LOGPROBS = 0.5


@dataclass(frozen=True)
class ParsedReply:
    """A reply that passed validation."""

    output: Any
    rationale: str
    label_start: int = -1  # classification: where the label begins in the reply text
    answer_span: tuple[int, int] | None = None  # extraction: the answer's characters in the reply


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_LABEL_VALUE = re.compile(r'"label"\s*:\s*"')
_ANSWER_KEY = re.compile(r'"answer"\s*:\s*')


def parse_reply(spec: FunctionSpec, content: str) -> ParsedReply | str:
    """The validated answer, or a sentence saying what is wrong with the reply."""
    text = content.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    if spec.kind == "classification":
        return _parse_classification(spec, content, text)
    try:
        value = json.loads(text)
    except ValueError as exc:
        return f"the reply is not JSON ({exc.msg} at position {exc.pos}): {content[:80]!r}"
    if _is_wrapper(value):
        problem = _schema_problem(spec, value["answer"], "answer")
        if problem:
            return problem
        rationale = value.get("rationale")
        return ParsedReply(
            output=value["answer"],
            rationale=rationale.strip() if isinstance(rationale, str) else "",
            answer_span=_answer_span(content, value["answer"]),
        )
    problem = _schema_problem(spec, value, "the reply")
    if problem:  # neither shape: ask for the one requested
        return f'the reply has no "answer" field, and as a bare answer {problem}'
    return ParsedReply(output=value, rationale="")  # a server that ignored the wrapper


def _is_wrapper(value: Any) -> bool:
    """{"answer": ..., "rationale": ...} (rationale optional, nothing else)."""
    return isinstance(value, dict) and "answer" in value and set(value) <= {"answer", "rationale"}


def _schema_problem(spec: FunctionSpec, value: Any, name: str) -> str | None:
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(spec.output or {}).iter_errors(value))
    if error is None:
        return None
    where = name + "".join(f"[{part!r}]" for part in error.absolute_path)
    return f"{where} does not match the output schema: {error.message}"


def _answer_span(content: str, answer: Any) -> tuple[int, int] | None:
    """Where the answer's JSON value sits in the reply text (None when it cannot be found)."""
    decoder = json.JSONDecoder()
    for match in _ANSWER_KEY.finditer(content):
        try:
            value, end = decoder.raw_decode(content, match.end())
        except ValueError:
            continue
        if value == answer:
            return match.end(), end
    return None


def _parse_classification(spec: FunctionSpec, content: str, text: str) -> ParsedReply | str:
    labels = spec.labels or {}
    if text in labels:  # a bare label (guided_choice)
        return ParsedReply(output=text, rationale="", label_start=content.index(text))
    try:
        value = json.loads(text)
    except ValueError:
        return f"the reply {content[:80]!r} is neither a label nor a JSON object"
    if not isinstance(value, dict) or "label" not in value:
        return f'the reply {content[:80]!r} has no "label" field'
    label = str(value["label"])
    if label not in labels:
        return f"{label!r} is not one of the labels {list(labels)}"
    match = _LABEL_VALUE.search(content)
    start = match.end() if match and content.startswith(label, match.end()) else -1
    rationale = value.get("rationale")
    return ParsedReply(
        output=label, rationale=rationale.strip() if isinstance(rationale, str) else "", label_start=start
    )


def label_probabilities(
    content: str, label_start: int, label: str, labels: list[str], tokens: list[dict[str, Any]]
) -> dict[str, float] | None:
    """Probability of every label from the top log-probabilities at the label's tokens.

    Walks the chosen label's tokens. At each one, an alternative token names the labels
    whose text continues the same way; its probability (times the probability of the shared
    prefix) is split evenly among them. The walk stops once the chosen label is the only one
    left with its prefix. Mass outside the top lists is spread evenly over the labels that got
    none; tokens that start no label are dropped; the result is normalized to sum 1.
    Returns None when the tokens do not line up with the reply text.
    """
    texts = [str(token.get("token", "")) for token in tokens]
    if label_start < 0 or "".join(texts) != content:
        return None
    label_end = label_start + len(label)
    mass = dict.fromkeys(labels, 0.0)
    leftover = 0.0
    path = 1.0  # probability of the chosen tokens so far
    position = 0
    for token, text in zip(tokens, texts, strict=True):
        start, position = position, position + len(text)
        if position <= label_start:
            continue
        chosen_p = math.exp(float(token.get("logprob", 0.0)))
        before = content[start:label_start]  # part of this token ahead of the label
        shared = content[label_start:start] if start > label_start else ""
        listed = chosen_p
        for alternative in token.get("top_logprobs") or []:
            alt_text = str(alternative.get("token", ""))
            if alt_text == text:
                continue
            p = math.exp(float(alternative.get("logprob", -math.inf)))
            listed += p
            if alt_text.startswith(before):
                matching = _labels_continuing(shared + alt_text[len(before) :], labels)
                for other in matching:
                    mass[other] += path * p / len(matching)
        leftover += path * max(0.0, 1.0 - listed)
        path *= chosen_p
        so_far = content[label_start:position]
        if position >= label_end or _labels_continuing(so_far, labels) == [label]:
            break
    mass[label] += path
    absent = [other for other in labels if mass[other] == 0.0]
    for other in absent:
        mass[other] = leftover / len(absent)
    total = sum(mass.values())
    if total <= 0:
        return None
    return {other: value / total for other, value in mass.items()}


def _labels_continuing(prefix: str, labels: list[str]) -> list[str]:
    """Labels whose text starts with `prefix`, or that `prefix` completes (then a quote/space)."""
    return [
        label
        for label in labels
        if label.startswith(prefix)
        or (prefix.startswith(label) and prefix[len(label) : len(label) + 1] in ('"', " ", ""))
    ]


def label_predictions(
    spec: FunctionSpec, completion: Completion, parsed: ParsedReply, temperature: float
) -> list[tuple[str, float]]:
    """(label, probability) for every label, high to low: from the logprobs tempered by
    `temperature`, or, without usable logprobs, the stated prior with the rest shared evenly."""
    labels = list(spec.labels or {})
    probabilities = None
    if completion.tokens:
        probabilities = label_probabilities(
            completion.content, parsed.label_start, parsed.output, labels, completion.tokens
        )
    if probabilities is None:
        others = [label for label in labels if label != parsed.output]
        top = CONFIDENCE_WITHOUT_LOGPROBS if others else 1.0
        probabilities = {parsed.output: top, **{label: (1 - top) / len(others) for label in others}}
    else:
        probabilities = temper(probabilities, temperature)
    return sorted(probabilities.items(), key=lambda item: (-item[1], item[0]))


def answer_tokens(
    content: str, tokens: list[dict[str, Any]] | None, span: tuple[int, int] | None
) -> list[dict[str, Any]] | None:
    """The tokens overlapping the answer's characters, so the rationale's wording does not
    count toward an extraction's confidence; all tokens when they do not spell the reply."""
    if not tokens or span is None or "".join(str(token.get("token", "")) for token in tokens) != content:
        return tokens
    start, end = span
    chosen, position = [], 0
    for token in tokens:
        token_start, position = position, position + len(str(token.get("token", "")))
        if token_start < end and position > start:
            chosen.append(token)
    return chosen or tokens


def reply_confidence(tokens: list[dict[str, Any]] | None) -> float:
    """exp(mean log-probability) of the reply's tokens: the geometric-mean token probability."""
    if not tokens:
        return EXTRACTION_CONFIDENCE_WITHOUT_LOGPROBS
    logprobs = [float(token.get("logprob", 0.0)) for token in tokens]
    return math.exp(sum(logprobs) / len(logprobs))
