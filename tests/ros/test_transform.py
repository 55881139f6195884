"""Static cloud -> detector transforms: 6 numbers (x y z roll pitch yaw) or a 4x4."""

import numpy as np
import pytest

from pointpillars_trt.errors import ConfigError
from pointpillars_trt.ros.transform import apply_transform, parse_transform, rpy_matrix


def test_rpy_is_fixed_axis_xyz():
    # yaw 90 deg maps +x to +y; pitch 90 deg maps +x to -z; roll 90 deg maps +y to +z
    np.testing.assert_allclose(rpy_matrix(0, 0, np.pi / 2) @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(rpy_matrix(0, np.pi / 2, 0) @ [1, 0, 0], [0, 0, -1], atol=1e-12)
    np.testing.assert_allclose(rpy_matrix(np.pi / 2, 0, 0) @ [0, 1, 0], [0, 0, 1], atol=1e-12)
    r = rpy_matrix(0.1, -0.2, 0.3)
    # Rz @ Ry @ Rx
    np.testing.assert_allclose(r, rpy_matrix(0, 0, 0.3) @ rpy_matrix(0, -0.2, 0) @ rpy_matrix(0.1, 0, 0), atol=1e-12)


def test_six_and_sixteen_numbers_agree():
    m6 = parse_transform([1.0, -2.0, 0.5, 0.05, -0.1, 1.2])
    m16 = parse_transform(m6.reshape(-1))
    np.testing.assert_array_equal(m6, m16)
    assert parse_transform(None) is None and parse_transform([]) is None


def test_apply_keeps_intensity():
    pts = np.array([[1, 0, 0, 0.3], [0, 2, 1, 0.7]], np.float32)
    m = parse_transform([10, 0, -1, 0, 0, np.pi / 2])
    out = apply_transform(pts, m)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[10, 1, -1, 0.3], [8, 0, 0, 0.7]], atol=1e-6)
    assert apply_transform(pts, None) is pts


@pytest.mark.parametrize("values, match", [
    ([1, 2, 3], "6 numbers"),
    ([0, 0, 0, 0, 0, float("nan")], "non-finite"),
    (list(np.diag([2.0, 1, 1, 1]).reshape(-1)), "not a rotation"),
    (list(np.diag([-1.0, 1, 1, 1]).reshape(-1)), "not a rotation"),
    ([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1], "last row"),
])
def test_bad_transforms(values, match):
    with pytest.raises(ConfigError, match=match):
        parse_transform(values)
