"""Cairn's benchmark against MLflow, FastTrackML and Aim, side by side on one machine in one run.

    python -m bench [--quick] [--postgres] [--only WORKLOAD[,WORKLOAD]] [--systems NAME[,NAME]]

See ``bench/README.md`` and ``docs/benchmarks.md``.
"""
