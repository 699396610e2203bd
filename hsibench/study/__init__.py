"""Studies: a grid of jobs, executors (serial, process pool, Dask), and the results store (one writer per folder)."""
from .config import Job, MethodSpec, Study, StudyError, load_study, study_from_dict
from .executors import DaskExecutor, ProcessExecutor, SerialExecutor, make_executor, pin_threads
from .runner import RunSummary, execute_job, run_study
from .store import ResultStore, StoreLocked, StoreWarning

__all__ = [
    "Job", "MethodSpec", "Study", "StudyError", "load_study", "study_from_dict",
    "DaskExecutor", "ProcessExecutor", "SerialExecutor", "make_executor", "pin_threads",
    "RunSummary", "execute_job", "run_study", "ResultStore", "StoreLocked", "StoreWarning",
]
