"""The slurmrestd versions served and how their shapes differ: data, read by ``schemas`` and ``routes``.

Each data_parser version is one ``Version``; a difference between versions is a field of it, never
a second copy of a handler.  Where each difference comes from (the OpenAPI specifications Slurm
generates, as the official ``slurmrestapi`` 25.11 client was built from them for v0.0.41-v0.0.44,
and the ``slurmrestapi`` 0.0.39 client for v0.0.39):

* v0.0.39 (Slurm 23.02): ``job_state`` one string, ``exit_code`` a plain number, times plain Unix
  numbers, ``meta`` as ``{"plugin", "Slurm": {"version": {major, micro, minor as numbers}, "release"}}``,
  GET /jobs without ``last_backfill``/``last_update``, pings without ``responding``/``primary``, DELETE
  without ``status``;
* v0.0.40 (23.11): ``job_state`` a list, numbers and times ``{set, infinite, number}``, exit codes
  ``{status, return_code, signal}``; the submit response still carries the deprecated ``result``;
* v0.0.41 (24.05): DELETE /job answers ``status`` per job; ``result`` still there;
* v0.0.42 (24.11): ``result`` gone;
* v0.0.43 (25.05): job_info adds ``stdin_expanded``/``stdout_expanded``/``stderr_expanded``,
  ``licenses_allocated`` and ``segment_size``;
* v0.0.44 (25.11): job_info adds ``step_id`` (``{job_id, step_het_component, step_id, sluid}``) and
  ``submit_line``.

The submit response's ``step_id`` is ``"batch"`` in every version: the STEP_ID dumper of Slurm's
data_parser writes SLURM_BATCH_SCRIPT as ``batch``, and slurmrestd(8)'s example answer from a real
24.11 slurmrestd shows ``"step_id": "batch"``.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Job_info fields a version adds to v0.0.42's.
EXPANDED_PATHS = "expanded_paths"  #: stdin_expanded, stdout_expanded, stderr_expanded
LICENSES_ALLOCATED = "licenses_allocated"
SEGMENT_SIZE = "segment_size"
STEP_ID = "step_id"  #: the batch step's slurm_step_id
SUBMIT_LINE = "submit_line"


@dataclass(frozen=True)
class Version:
    """One data_parser version: its name, the Slurm release it is answered as, and its shapes."""

    name: str  #: "v0.0.44"
    release: str  #: the Slurm release whose slurmrestd conductor answers as ("25.11.0")
    #: v0.0.40's shapes and later; False: v0.0.39's (job_state a string, plain numbers for times and exit
    #: codes, ``meta.Slurm``, no ``last_backfill``/``last_update``, pings without ``responding``/``primary``)
    structured: bool = True
    submit_result: bool = False  #: the submit response also carries the deprecated ``result``
    kill_status: bool = True  #: DELETE /job answers ``status`` per job (openapi_kill_job_resp)
    job_info_adds: frozenset[str] = frozenset()  #: fields added to v0.0.42's job_info

    @property
    def release_parts(self) -> tuple[str, str, str]:
        """(major, minor, micro) of ``release``: "25.11.0" -> ("25", "11", "0")."""
        major, minor, micro = self.release.split(".")
        return major, minor, micro


_V43_ADDS = frozenset({EXPANDED_PATHS, LICENSES_ALLOCATED, SEGMENT_SIZE})

#: Every version served, oldest first.
VERSIONS: tuple[Version, ...] = (
    Version("v0.0.39", "23.02.0", structured=False, kill_status=False),
    Version("v0.0.40", "24.11.0", submit_result=True, kill_status=False),
    Version("v0.0.41", "24.11.0", submit_result=True),
    Version("v0.0.42", "24.11.0"),
    Version("v0.0.43", "25.05.0", job_info_adds=_V43_ADDS),
    Version("v0.0.44", "25.11.0", job_info_adds=_V43_ADDS | {STEP_ID, SUBMIT_LINE}),
)
BY_NAME = {version.name: version for version in VERSIONS}
NEWEST = VERSIONS[-1]
