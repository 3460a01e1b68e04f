"""``#SBATCH`` / ``#CONDUCTOR`` directives, read exactly as sbatch reads them.  Pure, no I/O.

sbatch's rules (src/sbatch/opt.c, checked against Slurm 22.05):

* a directive starts at column 0 with ``#SBATCH`` (conductor also takes ``#CONDUCTOR``);
* blank lines and lines whose first non-blank character is ``#`` are skipped (so the
  ``#!`` line and ordinary comments do not end the block);
* the first line with anything else (a command) ends the block: later directives are ignored;
* a directive's arguments are split like a shell would (quotes, backslashes), and an
  unquoted ``#`` starts a comment.
"""

from __future__ import annotations

import shlex

PREFIXES = ("#SBATCH", "#CONDUCTOR")


def directive_arguments(script: str) -> list[str]:
    """The option tokens of every directive before the script's first command."""
    return [token for _, _, tokens in directive_lines(script) for token in tokens]


def directive_lines(script: str) -> list[tuple[int, str, list[str]]]:
    """Each directive before the script's first command: (line number from 1, the line, its tokens)."""
    found: list[tuple[int, str, list[str]]] = []
    for number, line in enumerate(script.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        prefix = next((p for p in PREFIXES if line.startswith(p)), None)
        if prefix is not None and (len(line) == len(prefix) or line[len(prefix)].isspace()):
            found.append((number, line, _split(line[len(prefix):], line)))
            continue
        if stripped.startswith("#"):
            continue
        break
    return found


def _split(text: str, line: str) -> list[str]:
    try:
        return shlex.split(text, comments=True)
    except ValueError as exc:  # an unbalanced quote
        raise ValueError(f"cannot read directive {line.strip()!r}: {exc}") from None
