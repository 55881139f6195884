"""TensorRT engines: build steps, raw plan files with JSON sidecars, version/GPU checks.

TensorRT is imported lazily (:func:`.api.load_tensorrt`): the package imports without it, and
a missing TensorRT raises :class:`~pointpillars_trt.errors.BackendUnavailableError`.

* :mod:`.api`         — every TensorRT call, as small functions; :data:`.api.TRT_API_USED`; the one process-wide logger
* :mod:`.contract`    — :func:`.contract.read_onnx_info` (the artifact reader plus I/O shapes) for a build
* :mod:`.engine_file` — ``<part>.plan`` + ``<part>.plan.json``, :func:`.engine_file.check_engine_header`
* :mod:`.build`       — profiles, the timing cache, :func:`.build.build_engines`
* :mod:`.runner`      — :class:`.runner.EngineRunner` and the checks across the engines of a folder
"""
