"""TensorRT engines: build steps, our engine file container, version/GPU checks.

TensorRT is imported lazily (:func:`.api.load_tensorrt`): the package imports without it, and
a missing TensorRT raises :class:`~pointpillars_trt.errors.BackendUnavailableError`.

* :mod:`.api`         — every TensorRT call, as small functions; :data:`.api.TRT_API_USED`
* :mod:`.contract`    — tensor names of the three parts, ONNX metadata keys, :func:`.contract.read_onnx_info`
* :mod:`.engine_file` — our container (magic + JSON header + plan) and :func:`.engine_file.check_engine_header`
* :mod:`.build`       — profiles and :func:`.build.build_engines`
"""
