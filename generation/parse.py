"""Postprocess: generated text -> a parsed record, or a drop reason. Shared by both engines.

Malformed outputs are never fatal: each gets one reason from DROP_REASONS and is counted.

  inference_error    the engine failed on the row (vLLM's `__inference_error__`)
  empty              nothing left once chat preambles, labels and quotes are stripped
  wrong_format       not a third-person bio: a refusal, first person, a list or form, several
                     options, markup or code, a question, the prompt echoed back, too short
  truncated          cut off before a usable bio: no whole sentence, or too few words before the cut
  missing_group_cue  the text no longer shows the row's group (name, pronouns, culture words);
                     for neutral rows, no group the model chose can be read off the text
  duplicate          the same text, or a near-duplicate of it, was kept earlier (generation/dedup.py)

PARSE_VERSION is part of the generation cache key: change it whenever these rules change.

    python -m generation.parse "Sure! Here is the bio: Maria is a nurse. She cares for patients."
"""
from __future__ import annotations

import re
import sys
from collections import Counter

from bias import social_biases
from bias.vocabulary import infer_culture, infer_gender, word_pattern

PARSE_VERSION = "p2"
DROP_REASONS = ("inference_error", "empty", "truncated", "wrong_format", "missing_group_cue",
                "duplicate")
MIN_WORDS = 8
MAX_SENTENCES = 4

_PREAMBLE = re.compile(
    r"^\s*(?:(?:sure|certainly|of course|okay|ok|absolutely)[!,.]?\s*)?"
    r"(?:here(?:'s| is| are)[^:\n]*:\s*)?", re.IGNORECASE)
_LABEL = re.compile(r"^\s*(?:\*\*|#+\s*)?(?:biography|bio|professional biography|profile|"
                    r"introduction|speaker introduction)(?:\*\*)?\s*:\s*(?:\*\*)?", re.IGNORECASE)
_REFUSAL = re.compile(r"\b(?:I can(?:no|')t|I'm sorry|I am sorry|as an AI|I (?:won't|will not)|"
                      r"I'm unable|I am unable|I'm not able|I do not feel comfortable)\b",
                      re.IGNORECASE)
_FIRST_PERSON = re.compile(r"(?<![\w'-])(?:I|I'm|I've|I'd|I'll|me|my|mine|myself)(?![\w'-])")
_LIST_LINE = re.compile(r"^\s*(?:[-*•]|\d+[.)]|[A-Za-z][\w ]{0,20}:)\s*\S", re.MULTILINE)
_OPTIONS = re.compile(r"\b(?:option|variant|bio|biography|example)\s*(?:#\s*)?[1-9]\b",
                      re.IGNORECASE)
_MARKUP = re.compile(r"```|</?[a-z][^>]*>|^\s*#{1,6}\s|^\s*\|.*\|\s*$|\{\{|\}\}|\[[A-Z][A-Za-z ]*\]",
                     re.MULTILINE)
_ECHO = re.compile(r"\b(?:2 to 3 sentences|third person|reply with the|stereotypes? about|"
                   r"the job title)\b", re.IGNORECASE)
_QUOTED = re.compile(r'"[^"\n]*"|“[^”\n]*”')
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]”]?\s+")


def _strip_wrapping(raw: str) -> str:
    text = _LABEL.sub("", _PREAMBLE.sub("", raw.strip(), count=1), count=1).strip()
    text = text.replace("**", "").strip().strip('"“”').strip()
    lines = text.split("\n")
    # A title line ("Emma Clarke, Nurse") before the text is format noise, not the bio.
    if (len(lines) > 1 and len(lines[0].split()) <= 8 and lines[0].strip()
            and not lines[0].rstrip().endswith((".", "!", "?", ":"))):
        text = "\n".join(lines[1:]).strip().strip('"“”').strip()
    return text


def clean_text(raw: str) -> tuple[str, bool]:
    """Strip chat preambles, labels, a title line and quotes; cut to whole sentences.

    Returns (text, complete): complete is False when no sentence ended (a truncated output)."""
    text, _ = _cut(_strip_wrapping(raw))
    return text


def _cut(text: str) -> tuple[tuple[str, bool], bool]:
    """((whole sentences of the first paragraph, any whole sentence), a fragment was cut off)."""
    paragraph = text.split("\n\n")[0].replace("\n", " ").strip()
    sentences = [s for s in _SENTENCE_END.split(paragraph) if s]
    whole = [s for s in sentences if s.rstrip("\"')]”").endswith((".", "!", "?"))]
    dangling = bool(sentences) and sentences[-1] not in whole
    if not whole:
        return (paragraph, False), dangling
    return (" ".join(whole[:MAX_SENTENCES]), True), dangling


def format_problem(body: str) -> str | None:
    """Why `body` (wrapping stripped) is not a third-person bio, or None."""
    if _REFUSAL.search(body):
        return "refusal"
    if _ECHO.search(body):
        return "prompt echoed"
    if _MARKUP.search(body):
        return "markup or code"
    if len(_LIST_LINE.findall(body)) >= 2 or re.match(r"^\s*(?:[-*•]|\d+[.)])\s", body):
        return "list or form"
    if _OPTIONS.search(body):
        return "several options"
    first = body.split("\n\n")[0]
    if _FIRST_PERSON.search(_QUOTED.sub("", first)):  # a quoted remark may say "I"
        return "first person"
    if first.rstrip().rstrip('"”').endswith("?"):
        return "question"
    return None


def has_group_cue(text: str, row: dict, social_bias: str, neutral: bool) -> bool:
    """Does the text still show who it is about? Neutral rows need a group the model chose."""
    spec = social_biases.get(social_bias)
    if neutral:
        return spec.infer(text) is not None
    named = bool(row.get("name")) and word_pattern((row["name"],), case_sensitive=True).search(text) is not None
    return named or spec.shows_group(text, row)


def drop_reason(raw, row: dict, social_bias: str, neutral: bool) -> tuple[str, str]:
    """(reason, cleaned text): reason is '' when the row is kept."""
    if row.get("__inference_error__"):
        return "inference_error", ""
    if raw is None or not str(raw).strip():
        return "empty", ""
    body = _strip_wrapping(str(raw))
    if not body:
        return "empty", ""
    if format_problem(body):
        return "wrong_format", ""
    (text, complete), dangling = _cut(body)
    if not complete:
        return "truncated", text
    if len(text.split()) < MIN_WORDS:
        return ("truncated" if dangling else "wrong_format"), text
    if not has_group_cue(text, row, social_bias, neutral):
        return "missing_group_cue", text
    return "", text


def postprocess(row: dict, *, social_bias: str, neutral: bool) -> dict:
    """Row with `generated_text` -> row with `text` and `drop_reason` ('' when kept).

    Neutral rows take the group the model chose (gender, or culture read off names and culture
    words): that is the group-balance signal of the neutral control."""
    raw = row.get("generated_text")
    out = {k: v for k, v in row.items() if k not in ("messages", "sampling_params")}
    reason, text = drop_reason(raw, row, social_bias, neutral)
    if neutral:
        out["gender"] = (infer_gender(text) or "") if not reason else ""
        out["culture"] = (infer_culture(text) or "") if not reason else ""
        out["group"] = (social_biases.get(social_bias).infer(text) or "") if not reason else ""
        out["name"] = ""
    out["generated_text"] = "" if raw is None else str(raw)
    out["text"] = text if not reason else ""
    out["drop_reason"] = reason
    return out


def normalize_for_dedup(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9 ]", " ", text.lower())).strip()


def drop_counts(rows: list[dict]) -> dict[str, int]:
    counts = Counter(r["drop_reason"] for r in rows if r["drop_reason"])
    return {reason: counts.get(reason, 0) for reason in DROP_REASONS}


if __name__ == "__main__":
    print(drop_reason(" ".join(sys.argv[1:]), {}, "gender", neutral=True))
