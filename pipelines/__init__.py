"""Dagster definitions only: assets, checks, sensors, schedules and resources that call registry/ and laws/.

The fits are many small LAPACK and L-BFGS-B calls, which a multi-threaded BLAS slows down several
times on a shared machine; one BLAS thread per process is the fast setting (bench/RESULTS.md).
Set before numpy is imported by anything under this package; a user's own setting wins.
"""

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
