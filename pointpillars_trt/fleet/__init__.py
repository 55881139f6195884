"""Fleet-scale offline inference on Ray Data: point files, KITTI splits and recordings in, one
Parquet row per frame out (and optionally label files), resumable, on one GPU or many.

:mod:`.plan` turns inputs into read tasks (:mod:`.tasks`), :mod:`.pipeline` runs them through
an actor pool of detectors (:mod:`.actor`) into the output (:mod:`.store`, rows as in
:mod:`.results`; :mod:`.labels`); an actor runs several batches at once in threads
(:mod:`pointpillars_trt.thread_warnings` catches each one's warnings). ``tools/batch_infer.py`` is the command
line; docs/FLEET.md.
Needs ``ray[data]`` (the ``fleet`` extra).
"""

from .labels import LabelWriter, check_unique_names
from .pipeline import FleetOptions, FleetSummary, connect, run_fleet
from .plan import InputSpec, frame_count, plan_tasks
from .store import ResultStore

__all__ = ["FleetOptions", "FleetSummary", "InputSpec", "LabelWriter", "ResultStore", "check_unique_names", "connect",
           "frame_count", "plan_tasks", "run_fleet"]
