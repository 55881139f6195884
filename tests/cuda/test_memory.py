"""Device and pinned buffers, streams and events (cuda/memory.py): round trips and the lifecycle."""

from __future__ import annotations

import numpy as np
import pytest

from tests.cuda_helpers import cuda_device  # noqa: F401  (fixture: skips without a GPU)


@pytest.mark.gpu
def test_round_trip_and_timing(cuda_device):
    from pointpillars_trt.cuda.memory import DeviceBuffer, Event, PinnedBuffer, Stream, copy_d2d_async, copy_d2h_async, copy_h2d_async

    data = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    src, dst = PinnedBuffer(data.nbytes, cuda_device), PinnedBuffer(data.nbytes, cuda_device)
    a, b = DeviceBuffer(data.nbytes, cuda_device), DeviceBuffer(data.nbytes, cuda_device)
    s = Stream(cuda_device)
    e0, e1 = Event(cuda_device), Event(cuda_device)
    src.view(np.float32, data.shape)[:] = data
    dst.view(np.float32, data.shape)[:] = np.nan
    e0.record(s.handle)
    copy_h2d_async(a.ptr, src.ptr, data.nbytes, s.handle)
    copy_d2d_async(b.ptr, a.ptr, data.nbytes, s.handle)
    copy_d2h_async(dst.ptr, b.ptr, data.nbytes, s.handle)
    e1.record(s.handle)
    s.synchronize()
    np.testing.assert_array_equal(dst.view(np.float32, data.shape), data)
    assert e0.elapsed_ms(e1) >= 0.0
    b.memset_async(s.handle)
    copy_d2h_async(dst.ptr, b.ptr, data.nbytes, s.handle)
    s.synchronize()
    assert not dst.view(np.float32, data.shape).any()
    with pytest.raises(ValueError, match="needs 8000 bytes"):
        src.view(np.float32, (2000,))
    for obj in (src, dst, a, b, s, e0, e1):
        obj.free()
        obj.free()  # idempotent
    for use, name in ((lambda: a.ptr, "DeviceBuffer"), (lambda: src.ptr, "PinnedBuffer"), (lambda: s.handle, "Stream"),
                      (lambda: e0.record(0), "Event")):
        with pytest.raises(ValueError, match=f"{name} used after free"):
            use()
