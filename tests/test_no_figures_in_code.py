"""House rule: code comments and docstrings carry reasons, not measurements.

A speed figure (tokens/s, GFLOP/s, "N x faster", a speed-up ratio) or the name of the CPU it was
measured on is true of one host on one day; in the code it goes stale silently. Such figures live
in docs/performance.md, dated and host-tagged, with the command that produced them; the comment
keeps the reason in a sentence. This test reads every comment and docstring (with `tokenize`, so
code and ordinary strings such as a benchmark's print formats are not read) and lists each match
as path:line: match.
"""
from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterator

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.unit

SCANNED = ("bias", "training", "generation", "evaluation", "ray_jobs", "benchmarks", "tests",
           "cluster")

_NUMBER = r"\d(?:[\d.,]*\d)?"
FIGURE = re.compile(
    "|".join([
        # a rate with its number: tokens, samples, rows, items or steps per second, k-prefixed too
        rf"{_NUMBER}\s*k?\s*(?:tokens?|tok|samples|rows|items|steps|it)\s*/\s*s(?:ec)?\b",
        # a rate in FLOP/s (G, T or P), with its number
        rf"{_NUMBER}\s*[GTP]FLOP(?:/s|S\b)",
        # a ratio or a percentage said to be faster or slower (or ahead, behind, a speed-up)
        rf"{_NUMBER}\s*(?:x|×|%)\s*(?:faster|slower|quicker|speed-?ups?|ahead|behind)\b",
        # a speed-up with its number
        rf"speed-?ups?\s*(?:of\s*|=\s*|:\s*)?(?:~|about\s+)?{_NUMBER}",
        # a ratio written with the multiplication sign right after its number
        r"\d(?:\.\d+)?×(?!\s*\d)",
        # a bare decimal ratio: digits, a point, digits and an x right after them
        r"\b\d+\.\d+x\b",
        # CPU hosts
        r"\bZen\s?\d\b", r"\bEPYC\b", r"\bXeon\b", r"\bOpteron\b", r"\bRyzen\b",
        r"\b(?:Sapphire|Emerald|Granite)\s+Rapids\b", r"\b(?:Ice|Cascade|Cooper)\s+Lake\b",
        r"\bSkylake\b", r"\bGenoa\b", r"\bTurin\b", r"\bGraviton\s?\d*\b",
    ]),
    re.IGNORECASE)

_STATEMENT_START = (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING)
_SKIPPED = (tokenize.NL, tokenize.COMMENT)


def comments_and_docstrings(source: str) -> Iterator[tuple[int, str]]:
    """(first line, text) of every comment and every docstring: a string (or implicitly
    concatenated strings) standing as a whole statement, whatever its place in the file."""
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    previous = None   # the last token that is neither a comment nor a non-logical newline
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string
        elif token.type == tokenize.STRING and (previous is None
                                                or previous.type in _STATEMENT_START):
            strings, j = [], i
            while j < len(tokens) and tokens[j].type in (tokenize.STRING, *_SKIPPED):
                if tokens[j].type == tokenize.STRING:
                    strings.append(tokens[j])
                elif tokens[j].type == tokenize.COMMENT:
                    yield tokens[j].start[0], tokens[j].string
                j += 1
            if j == len(tokens) or tokens[j].type in (tokenize.NEWLINE, tokenize.ENDMARKER):
                for string in strings:
                    yield string.start[0], string.string
            previous, i = tokens[j - 1], j
            continue
        if token.type not in _SKIPPED:
            previous = token
        i += 1


def findings(source: str, name: str) -> list[str]:
    """`name:line: match` for every figure or host name in the source's comments and docstrings."""
    found = []
    for first_line, text in comments_and_docstrings(source):
        for match in FIGURE.finditer(text):
            line = first_line + text.count("\n", 0, match.start())
            found.append(f"{name}:{line}: {' '.join(match.group(0).split())}")
    return found


def python_files() -> list:
    return sorted(p for d in SCANNED if (REPO / d).is_dir() for p in (REPO / d).rglob("*.py")
                  if "__pycache__" not in p.parts)


def test_no_speed_figures_or_host_names_in_comments_and_docstrings():
    files = python_files()
    assert len(files) > 50, "the scan found almost no source files: is REPO right?"
    found = [f for path in files
             for f in findings(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))]
    assert not found, ("speed figures or host names in comments/docstrings; keep the reason in "
                       "the code and move the dated, host-tagged figures to "
                       "docs/performance.md:\n  " + "\n  ".join(found))


def test_the_check_finds_what_it_is_for_and_leaves_code_alone():
    """Positive control: the same scanner on a snippet with a figure in a module docstring, a
    function docstring and a comment finds each, at its line; code, ordinary strings and
    figures that are not speeds pass."""
    snippet = '\n'.join([
        '"""A module.',                                                    # 1
        '',                                                                # 2
        'Packed, the loop ran 1.29x faster (1,037 against 979 tokens/s)."""',  # 3
        'RATE = "396 tokens/s"   # the eager loop on a Zen 4 host',        # 4
        'WIDTH = 2 * 576   # 32 x 49,152 fp32 = 6.3 MB; 80% power at 0.05',  # 5
        '',                                                                # 6
        'def f():',                                                        # 7
        '    """Ray workers run the backward',                             # 8
        '    3x slower; torch reached 210 GFLOP/s on an EPYC."""',         # 9
        '    print(f"{RATE} tokens/s, 1.5x faster")',                      # 10
        '    return ("not a docstring: 500 tokens/s"',                     # 11
        '            "either")',                                           # 12
        '',
    ])
    assert findings(snippet, "snippet.py") == [
        "snippet.py:3: 1.29x faster",
        "snippet.py:3: 979 tokens/s",
        "snippet.py:4: Zen 4",
        "snippet.py:9: 3x slower",
        "snippet.py:9: 210 GFLOP/s",
        "snippet.py:9: EPYC",
    ]
    for text in ("about 10% faster", "a 1.83× speed-up", "speed-up of 2.1", "12,222 tok/s",
                 "680-691 TFLOP/s", "Sapphire Rapids", "Zen5"):
        assert findings(f"# {text}\n", "c.py"), text
