"""slurmrestd's job endpoints (``/slurm/v0.0.39`` to ``v0.0.44``), so that a client written for slurmrestd works.

One concern per module, imported in this order (each only from those before it):

* ``error_numbers``: Slurm's error numbers and their texts (slurm_errno.h); a leaf, which the
  API's one exception table (``api.errors``) also cites;
* ``versions``: the versions served and how their shapes differ, as data;
* ``schemas``: Slurm's response shapes (job_info, meta, errors, warnings) for a version;
* ``values``: reading Slurm's numbers, booleans and strings (``{set, infinite, number}``, NO_VAL);
* ``translate``: job_submit_req -> conductor's SubmitRequest, pure;
* ``ops``: what needs the service (submit, resolve ids, list current jobs, cancel, ping), through
  JobService's public methods;
* ``routes``: request plumbing and the route table, added once per version.

Nothing is imported here, so that ``api.errors`` can read ``error_numbers`` without the routes.
"""
