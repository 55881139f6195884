from pointpillars_trt.checkpoint.rename import Rule, rename


def test_rule_shifts_the_layer_index():
    rule = Rule("backbone_2d.blocks.{i}.{k}.", "rpn.blocks.{i}.{k}.", shift=-1)
    assert rule.apply("backbone_2d.blocks.2.17.running_var") == "rpn.blocks.2.16.running_var"
    assert rule.apply("backbone_2d.deblocks.0.0.weight") is None
    assert rule.apply("backbone_2d.blocks.0.0.weight") is None  # index 0 (ZeroPad2d) has no native slot
    assert rule.inverse().apply("rpn.blocks.2.16.running_var") == "backbone_2d.blocks.2.17.running_var"


def test_first_matching_rule_wins_and_prefixes_are_anchored():
    rules = (Rule("head.conv_cls.", "rpn.conv_cls."), Rule("bbox_head.conv_cls.", "x."))
    assert rename("bbox_head.conv_cls.bias", rules) == "x.bias"
    assert rename("head.conv_cls.bias", rules) == "rpn.conv_cls.bias"
    assert rename("other.weight", rules) is None
