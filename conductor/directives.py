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
    tokens: list[str] = []
    for line in script.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        prefix = next((p for p in PREFIXES if line.startswith(p)), None)
        if prefix is not None and (len(line) == len(prefix) or line[len(prefix)].isspace()):
            tokens.extend(_split(line[len(prefix):], line))
            continue
        if stripped.startswith("#"):
            continue
        break
    return tokens


def _split(text: str, line: str) -> list[str]:
    try:
        return shlex.split(text, comments=True)
    except ValueError as exc:  # an unbalanced quote
        raise ValueError(f"cannot read directive {line.strip()!r}: {exc}") from None
