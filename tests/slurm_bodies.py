"""slurmrestd job_submit_req bodies from Slurm's own documentation and test suite, verbatim, for the
translation's unit tests and the Slurm endpoints' acceptance tests."""

from __future__ import annotations

#: SchedMD/slurm doc/html/rest_quickstart.shtml ("Basic Usage", Slurm 23.02/23.11 editions), verbatim:
#: note ``ntasks`` (not a job_desc_msg field of v0.0.40+) and the ``KEY:VALUE`` environment strings.
QUICKSTART_BODY = {
    "job": {"name": "test", "ntasks": 1, "current_working_directory": "/tmp",
            "environment": ["PATH:/bin:/usr/bin/:/usr/local/bin/", "LD_LIBRARY_PATH:/lib/:/lib64/:/usr/local/lib"]},
    "script": "#!/bin/bash\necho it works",
}

#: SchedMD/slurm testsuite/python/tests/test_112_40.py, test_112_41.py and test_112_42.py, test_jobs: the
#: bodies their OpenAPI-generator client sends, the same for the three versions:
#: V00xxJobSubmitReq(script=..., job=V00xxJobDescMsg(partition, name, environment,
#: current_working_directory)); the generated client drops unset fields.
TESTSUITE_SCRIPT = "#!/bin/bash\n/bin/true"
TESTSUITE_ENV = ["PATH=/bin/:/sbin/:/usr/bin/:/usr/sbin/"]
TESTSUITE_BODY = {"script": TESTSUITE_SCRIPT,
                  "job": {"partition": "debug", "name": "test job", "environment": TESTSUITE_ENV,
                          "current_working_directory": "/tmp/"}}
#: The same tests' held job: priority {number: 0, set: true}; Slurm answers it with a warning.
TESTSUITE_HELD_BODY = {"script": TESTSUITE_SCRIPT,
                       "job": {"partition": "debug", "name": "test job", "environment": TESTSUITE_ENV,
                               "priority": {"number": 0, "set": True}, "current_working_directory": "/tmp/"}}
