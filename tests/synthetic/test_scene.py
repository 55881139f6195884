"""Seeded street scenes and their ground casts stay what they were when generate_scene and
_cast_ground were split into small functions (digests computed from the code before the split)."""

from __future__ import annotations

import hashlib
from dataclasses import fields

import numpy as np
import pytest

from pointpillars_trt.synthetic import SensorConfig
from pointpillars_trt.synthetic.raycast import cast
from pointpillars_trt.synthetic.scene import generate_scene

# seed -> digest of generate_scene(np.random.default_rng(seed)), from the code before the split
SCENE_DIGESTS = {
    0: "b10dce4504ec304c",
    1: "aee12f356536b864",
    2: "dd37888ea623e818",
    3: "d65e5a4039074da4",
    4: "a1ac65c81cf217e6",
    5: "4e8f27d6b06a2b9b",
}
# seed -> digest of the full HDL-64E cast of that scene
CAST_DIGESTS = {
    0: "a76c62ea74c9b41f",
    3: "924ff59b39f31d5d",
}


def digest(*arrays) -> str:
    """sha256 (16 hex digits) of arrays; floats rounded to 6 decimals (-0.0 as 0.0) so that the last
    bit of a libm result does not decide it."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.asarray(a)
        if a.dtype.kind == "f":
            a = np.round(a.astype(np.float64), 6) + 0.0
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def scene_digest(scene) -> str:
    """Digest of everything a scene holds: ground, every primitive field, boxes, names, object index."""
    g = scene.ground
    prims = [getattr(scene.primitives, f.name) for f in fields(scene.primitives)]
    return digest(g.params(), np.array(g.lane_lines, dtype=np.float64), np.array(g.lane_dashed, dtype=bool),
                  *prims, scene.boxes, np.array(scene.names, dtype="U10"), scene.primitive_object)  # fmt: skip


def cast_digest(scene) -> str:
    s = SensorConfig()
    res = cast(scene.primitives, scene.ground, s.elevations_rad(), s.num_azimuth, 0.001, s.max_range, len(scene.names))
    return digest(res.range, res.hit, res.cos_incidence, res.would_hit)


@pytest.mark.parametrize("seed", sorted(SCENE_DIGESTS))
def test_seeded_scene_is_unchanged(seed):
    scene = generate_scene(np.random.default_rng(seed))
    assert len(scene.names) > 0 and scene.boxes.shape == (len(scene.names), 7)
    assert scene_digest(scene) == SCENE_DIGESTS[seed]


@pytest.mark.parametrize("seed", sorted(CAST_DIGESTS))
def test_seeded_cast_is_unchanged(seed):
    assert cast_digest(generate_scene(np.random.default_rng(seed))) == CAST_DIGESTS[seed]


def test_same_generator_state_same_scene():
    a, b = (generate_scene(np.random.default_rng(11)) for _ in range(2))
    assert scene_digest(a) == scene_digest(b)
    assert scene_digest(a) != scene_digest(generate_scene(np.random.default_rng(12)))
