"""Postprocess: generated text -> a parsed bio record, or a drop reason. Shared by both engines.

Malformed outputs are never fatal: each gets one reason from DROP_REASONS and is counted.

    python -m generation.parse "Sure! Here is the bio: Maria is a nurse. She cares for patients."
"""
from __future__ import annotations

import re
import sys
from collections import Counter

from bias.vocabulary import CULTURE_WORDS, infer_gender, word_pattern

DROP_REASONS = ("inference_error", "empty", "truncated", "wrong_format", "missing_group_cue",
                "duplicate")
MIN_WORDS = 8
MAX_SENTENCES = 4

_PREAMBLE = re.compile(
    r"^\s*(?:(?:sure|certainly|of course|okay|ok)[!,.]?\s*)?(?:here(?:'s| is)[^:\n]*:\s*)?",
    re.IGNORECASE)
_LABEL = re.compile(r"^\s*(?:\*\*)?(?:biography|bio|professional biography)(?:\*\*)?\s*:\s*",
                    re.IGNORECASE)
_REFUSAL = re.compile(r"\b(?:I can(?:no|')t|I'm sorry|I am sorry|as an AI|I (?:won't|will not))\b",
                      re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+")


def clean_text(raw: str) -> tuple[str, bool]:
    """Strip chat preambles, labels and quotes; cut to whole sentences.

    Returns (text, complete): complete is False when no sentence ended (a truncated output)."""
    text = _LABEL.sub("", _PREAMBLE.sub("", raw.strip(), count=1), count=1).strip()
    text = text.strip('"“”').strip()
    paragraph = text.split("\n\n")[0].replace("\n", " ").strip()
    sentences = [s for s in _SENTENCE_END.split(paragraph) if s]
    whole = [s for s in sentences if s.rstrip("\"')]").endswith((".", "!", "?"))]
    if not whole:
        return paragraph, False
    return " ".join(whole[:MAX_SENTENCES]), True


def has_group_cue(text: str, row: dict, social_bias: str, neutral: bool) -> bool:
    """Does the text still show who the bio is about? Neutral rows only need some gender cue."""
    if neutral:
        return infer_gender(text) is not None
    named = bool(row.get("name")) and word_pattern((row["name"],), case_sensitive=True).search(text) is not None
    if social_bias == "gender":
        return named or infer_gender(text) == row["gender"]
    culture_words = CULTURE_WORDS.get(row.get("culture", ""), ())
    return named or (bool(culture_words) and word_pattern(tuple(culture_words)).search(text) is not None)


def postprocess(row: dict, *, social_bias: str, neutral: bool) -> dict:
    """Row with `generated_text` -> row with `text` and `drop_reason` ('' when kept)."""
    raw = row.get("generated_text")
    out = {k: v for k, v in row.items() if k not in ("messages", "sampling_params")}
    reason, text = "", ""
    if row.get("__inference_error__"):
        reason = "inference_error"
    elif not raw or not str(raw).strip():
        reason = "empty"
    else:
        text, complete = clean_text(str(raw))
        if not text:
            reason = "empty"
        elif not complete:
            reason = "truncated"
        elif len(text.split()) < MIN_WORDS or _REFUSAL.search(text):
            reason = "wrong_format"
        elif not has_group_cue(text, row, social_bias, neutral):
            reason = "missing_group_cue"
    if neutral and not reason:
        out["gender"] = infer_gender(text)  # the model chose the gender: the group-balance signal
    out["text"] = text
    out["drop_reason"] = reason
    return out


def normalize_for_dedup(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]", "", text.lower()).strip()


def mark_duplicates(rows: list[dict]) -> None:
    """Mark exact duplicates (after normalisation) among kept rows, in place; first one wins."""
    seen: set[str] = set()
    for row in rows:
        if row["drop_reason"]:
            continue
        key = normalize_for_dedup(row["text"])
        if key in seen:
            row["drop_reason"] = "duplicate"
        seen.add(key)


def drop_counts(rows: list[dict]) -> dict[str, int]:
    counts = Counter(r["drop_reason"] for r in rows if r["drop_reason"])
    return {reason: counts.get(reason, 0) for reason in DROP_REASONS}


if __name__ == "__main__":
    print(clean_text(" ".join(sys.argv[1:])))
