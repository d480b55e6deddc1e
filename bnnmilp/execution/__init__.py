"""Execution: jobs in process, on a process pool or on Dask, resumable; sweeps of training jobs."""
