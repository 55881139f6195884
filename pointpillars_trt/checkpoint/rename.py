"""Key renaming rules between a source implementation's state-dict names and the native ones."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rule:
    """Rename keys starting with ``src`` to ``dst``.

    Both patterns may hold the placeholders ``{i}`` (a block index, copied as is) and ``{k}``
    (a layer index inside the block, shifted by ``shift``: OpenPCDet's ``ZeroPad2d`` at index 0
    moves every layer of a backbone block one index up, so its rule has ``shift=-1``).
    The rest of the key after the matched prefix (``weight``, ``running_var``, ...) is kept.
    """

    src: str
    dst: str
    shift: int = 0
    _regex: re.Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pattern = re.escape(self.src).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{k\}", r"(?P<k>\d+)")
        object.__setattr__(self, "_regex", re.compile(pattern))

    def apply(self, key: str) -> str | None:
        """The renamed key, or ``None`` if the rule does not match ``key``."""
        m = self._regex.match(key)
        if m is None:
            return None
        groups = m.groupdict()
        if "k" in groups:
            k = int(groups["k"]) + self.shift
            if k < 0:
                return None
            groups["k"] = str(k)
        return self.dst.format(**groups) + key[m.end():]

    def inverse(self) -> "Rule":
        return Rule(self.dst, self.src, -self.shift)


def source_rules(
    pfn_linear: str, pfn_norm: str, blocks: str, deblocks: str, head: str, box_conv: str = "conv_reg"
) -> tuple[Rule, ...]:
    """The seven rules of a source whose PFN, backbone blocks, neck deblocks and head convs
    (``conv_cls``, ``box_conv``, ``conv_dir_cls``) map one to one onto the native ones.

    ``pfn_linear``/``pfn_norm`` are full key prefixes (``"vfe.pfn_layers.0.linear."``); ``blocks``,
    ``deblocks`` and ``head`` are module paths without the trailing dot (``"backbone.blocks"``).
    """
    return (
        Rule(pfn_linear, "pfn.linear."),
        Rule(pfn_norm, "pfn.norm."),
        Rule(blocks + ".{i}.{k}.", "rpn.blocks.{i}.{k}."),
        Rule(deblocks + ".{i}.{k}.", "rpn.deblocks.{i}.{k}."),
        Rule(head + ".conv_cls.", "rpn.conv_cls."),
        Rule(f"{head}.{box_conv}.", "rpn.conv_box."),
        Rule(head + ".conv_dir_cls.", "rpn.conv_dir."),
    )


def rename(key: str, rules: tuple[Rule, ...]) -> str | None:
    """Apply the first matching rule; ``None`` if none matches."""
    for rule in rules:
        out = rule.apply(key)
        if out is not None:
            return out
    return None
