"""Message factories: build messages of one ROS flavour from field values.

The builders in :mod:`pointpillars_trt.ros.messages` never import ROS; they call a factory:

* :class:`RosbagsFactory` - ``rosbags`` dataclasses (ROS 1 or ROS 2 type store); serialize with
  ``typestore.serialize_ros1`` / ``serialize_cdr``. No ROS install needed (bag replay, tests).
* :class:`GenpyFactory` - ROS 1 ``genpy`` classes (rospy), including ``BoxArray`` built at run time.
* :class:`RclpyFactory` - ROS 2 ``rosidl`` Python classes (rclpy).

Type names are always given in the ROS 2 form ``pkg/msg/Type``.
"""

from __future__ import annotations

import array
import importlib
from typing import Any, Callable

import numpy as np

from .cloud import Stamp
from .msgdefs import BOX_ARRAY_TYPE, box_array_msg_cat

POINT_TYPE = "geometry_msgs/msg/Point"


def split_type(typename: str) -> tuple[str, str]:
    """``"pkg/msg/Type"`` or ``"pkg/Type"`` -> ``("pkg", "Type")``."""
    parts = typename.split("/")
    return parts[0], parts[-1]


class MessageFactory:
    """Base class; see the module docstring. ``ros_version`` is 1 or 2."""

    ros_version: int = 2

    def new(self, typename: str, **fields: Any) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def cls(self, typename: str) -> Any:  # pragma: no cover - interface
        """The flavour's message class of ``typename``."""
        raise NotImplementedError

    def has(self, typename: str) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def field_types(self, typename: str) -> dict[str, str]:  # pragma: no cover - interface
        """Field name -> type name (as the flavour spells it; only compared against ``string``)."""
        raise NotImplementedError

    def time(self, stamp: Stamp) -> Any:
        return self.new("builtin_interfaces/msg/Time", sec=int(stamp.sec), nanosec=int(stamp.nsec))

    def duration(self, seconds: float) -> Any:
        ns = int(round(seconds * 1e9))
        return self.new("builtin_interfaces/msg/Duration", sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)

    def uint8_array(self, data: bytes) -> Any:
        return bytes(data)

    def points(self, rows: Any) -> list[Any]:
        """``geometry_msgs/Point`` messages of ``rows`` (an iterable of ``(x, y, z)`` Python floats, e.g.
        ``array.tolist()``): a marker's line list holds ~26 per box, so the class is looked up once and
        called with every field (rosbags' dataclasses need all three; rclpy's take them as keywords)."""
        point = self.cls(POINT_TYPE)
        return [point(x=x, y=y, z=z) for x, y, z in rows]


class ImportedClassFactory(MessageFactory):
    """Messages built from Python classes imported from ``<pkg>.msg`` modules (rospy and rclpy),
    cached by type name; subclasses say how a type name becomes a class (:meth:`_load`)."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    def _load(self, pkg: str, name: str) -> Any:
        return getattr(importlib.import_module(f"{pkg}.msg"), name)

    def cls(self, typename: str) -> Any:
        if typename not in self._cache:
            self._cache[typename] = self._load(*split_type(typename))
        return self._cache[typename]

    def has(self, typename: str) -> bool:
        try:
            self.cls(typename)
        except (ImportError, AttributeError):
            return False
        return True

    def new(self, typename: str, **fields: Any) -> Any:
        return self.cls(typename)(**fields)


# --------------------------------------------------------------------------------------------------
# rosbags


_NUMPY_TYPES = {"bool": np.bool_, "byte": np.uint8, "char": np.uint8, "octet": np.uint8}


class RosbagsFactory(MessageFactory):
    """``rosbags`` message dataclasses; every field not given gets its zero value."""

    def __init__(self, typestore: Any, ros_version: int) -> None:
        self.typestore = typestore
        self.ros_version = ros_version
        self._specs: dict[str, tuple[Any, tuple[tuple[str, Callable[[], Any]], ...]]] = {}

    def has(self, typename: str) -> bool:
        return typename in self.typestore.fielddefs

    def cls(self, typename: str) -> Any:
        return self.typestore.types[typename]

    def field_types(self, typename: str) -> dict[str, str]:
        from rosbags.interfaces import Nodetype

        out = {}
        for name, (kind, detail) in self.typestore.fielddefs[typename][1]:
            out[name] = detail[0] if kind == Nodetype.BASE else str(detail)
        return out

    def _default_maker(self, kind: Any, detail: Any) -> Callable[[], Any]:
        """A field's zero value as a callable: constants shared, arrays and messages made per call."""
        from rosbags.interfaces import Nodetype

        if kind == Nodetype.BASE:
            name = detail[0]
            zero = "" if name == "string" else False if name == "bool" else 0.0 if name.startswith("float") else 0
            return lambda: zero
        if kind == Nodetype.NAME:
            return lambda: self.new(detail)
        (sub_kind, sub_detail), length = detail
        numeric = sub_kind == Nodetype.BASE and sub_detail[0] != "string"
        dtype = _NUMPY_TYPES.get(sub_detail[0], sub_detail[0]) if numeric else None
        if kind == Nodetype.ARRAY:
            if numeric:
                return lambda: np.zeros(length, dtype=dtype)
            item = self._default_maker(sub_kind, sub_detail)
            return lambda: [item() for _ in range(length)]
        return (lambda: np.zeros(0, dtype=dtype)) if numeric else list

    def _spec(self, typename: str) -> tuple[Any, tuple[tuple[str, Callable[[], Any]], ...]]:
        """``(dataclass, ((field, zero value maker), ...))`` of a type, worked out once."""
        spec = self._specs.get(typename)
        if spec is None:
            fields = self.typestore.fielddefs[typename][1]
            spec = self._specs[typename] = (self.cls(typename), tuple((name, self._default_maker(*kd)) for name, kd in fields))
        return spec

    def new(self, typename: str, **fields: Any) -> Any:
        cls, spec = self._spec(typename)
        for name, zero in spec:
            if name not in fields:
                fields[name] = zero()
        if len(fields) != len(spec):  # a name that is no field of the type
            raise TypeError(f"{typename} has no field(s) {sorted(set(fields) - {name for name, _ in spec})}")
        return cls(**fields)

    def uint8_array(self, data: bytes) -> Any:
        return np.frombuffer(bytes(data), dtype=np.uint8)


# --------------------------------------------------------------------------------------------------
# ROS 1 (genpy / rospy)

_ros1_dynamic: dict[str, Any] = {}


def ros1_box_array_classes() -> dict[str, Any]:
    """``{"pointpillars_trt_msgs/BoxArray": cls, "pointpillars_trt_msgs/Box3D": cls, ...}`` generated
    at run time with ``genpy.dynamic`` from :data:`~pointpillars_trt.ros.msgdefs.BOX_ARRAY_MSG`
    (cached; needs ``genpy``, which comes with rospy)."""
    if not _ros1_dynamic:
        from genpy.dynamic import generate_dynamic

        pkg, name = split_type(BOX_ARRAY_TYPE)
        _ros1_dynamic.update(generate_dynamic(f"{pkg}/{name}", box_array_msg_cat()))
    return _ros1_dynamic


class GenpyFactory(ImportedClassFactory):
    """ROS 1 message classes from the installed ``*_msgs`` packages (or generated ``BoxArray``)."""

    ros_version = 1

    def _load(self, pkg: str, name: str) -> Any:
        if pkg == split_type(BOX_ARRAY_TYPE)[0]:
            return ros1_box_array_classes()[f"{pkg}/{name}"]
        return super()._load(pkg, name)

    def new(self, typename: str, **fields: Any) -> Any:
        # genpy's keyword path checks every name against __slots__ and then sets each slot: ~8x slower
        # for a Point than the argument-free constructor (every field its default) plus plain setattr,
        # which gives the same message (a name that is no field still raises AttributeError: slots)
        msg = self.cls(typename)()
        for name, value in fields.items():
            setattr(msg, name, value)
        return msg

    def points(self, rows: Any) -> list[Any]:
        point, out = self.cls(POINT_TYPE), []
        for x, y, z in rows:
            p = point()
            p.x, p.y, p.z = x, y, z
            out.append(p)
        return out

    def field_types(self, typename: str) -> dict[str, str]:
        c = self.cls(typename)
        return dict(zip(c.__slots__, c._slot_types))

    def time(self, stamp: Stamp) -> Any:
        import genpy

        return genpy.Time(int(stamp.sec), int(stamp.nsec))

    def duration(self, seconds: float) -> Any:
        import genpy

        ns = int(round(seconds * 1e9))
        return genpy.Duration(ns // 1_000_000_000, ns % 1_000_000_000)


# --------------------------------------------------------------------------------------------------
# ROS 2 (rclpy)


class RclpyFactory(ImportedClassFactory):
    """ROS 2 ``rosidl`` Python message classes (the ones rclpy publishes)."""

    ros_version = 2

    def field_types(self, typename: str) -> dict[str, str]:
        return dict(self.cls(typename).get_fields_and_field_types())

    def uint8_array(self, data: bytes) -> Any:
        out = array.array("B")
        out.frombytes(bytes(data))
        return out
