"""Slurm's error numbers and texts, from ``slurm/slurm_errno.h`` and ``src/common/slurm_errno.c``.

A leaf: ``api.errors`` names them in the one exception table, ``api.slurm`` writes them in
Slurm's error shape.
"""

from __future__ import annotations

SLURM_SUCCESS = 0
SLURM_ERROR = -1
SLURM_COMMUNICATIONS_CONNECTION_ERROR = 1001
ESLURM_ACCESS_DENIED = 2002
ESLURM_USER_ID_MISSING = 2010
ESLURM_INVALID_JOB_ID = 2017
ESLURM_ALREADY_DONE = 2021
ESLURM_JOB_PENDING = 2024
ESLURM_REST_INVALID_QUERY = 9000
ESLURM_REST_FAIL_PARSING = 9001
ESLURM_REST_INVALID_JOBS_DESC = 9002
ESLURM_REST_UNKNOWN_URL = 9006

STRERROR = {
    ESLURM_ACCESS_DENIED: "Access/permission denied",
    ESLURM_USER_ID_MISSING: "User id missing",
    SLURM_COMMUNICATIONS_CONNECTION_ERROR: "Unable to contact slurm controller (connect failure)",
    ESLURM_INVALID_JOB_ID: "Invalid job id specified",
    ESLURM_ALREADY_DONE: "Job/step already completing or completed",
    ESLURM_JOB_PENDING: "Job is pending execution",
    ESLURM_REST_INVALID_QUERY: "Query empty or not RFC7320 compliant",
    ESLURM_REST_FAIL_PARSING: "Failure during parsing",
    ESLURM_REST_INVALID_JOBS_DESC: "Jobs description entry not found, empty or not dictionary or list",
    ESLURM_REST_UNKNOWN_URL: "Unable to find requested URL endpoint",
    SLURM_ERROR: "Unspecified error",
    SLURM_SUCCESS: "No error",
}


def strerror(number: int) -> str:
    """Slurm's text for an error number (``Unspecified error`` for one not listed)."""
    return STRERROR.get(number, STRERROR[SLURM_ERROR])
