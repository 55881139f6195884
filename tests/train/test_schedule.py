"""The one-cycle schedule against torch's OneCycleLR, and its fit to a time limit."""

import pytest
import torch

from pointpillars_trt.train.schedule import OneCycle, cos_anneal, one_cycle

ARGS = dict(max_lr=3e-3, pct_start=0.4, div_factor=10.0, final_div_factor=1e4, moms=(0.95, 0.85))


def _opt():
    return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3))], lr=ARGS["max_lr"] / ARGS["div_factor"],
                             betas=(0.95, 0.99))


@pytest.mark.parametrize("total", [2, 10, 37, 500])
def test_without_a_limit_it_is_torchs_one_cycle_to_the_bit(total):
    ref_opt, opt = _opt(), _opt()
    ref = torch.optim.lr_scheduler.OneCycleLR(ref_opt, total_steps=total, anneal_strategy="cos", cycle_momentum=True,
                                              base_momentum=0.85, max_momentum=0.95, max_lr=ARGS["max_lr"],
                                              pct_start=ARGS["pct_start"], div_factor=ARGS["div_factor"],
                                              final_div_factor=ARGS["final_div_factor"])
    ours = OneCycle(opt, total, **ARGS)
    for step in range(1, total + 1):
        assert (opt.param_groups[0]["lr"], opt.param_groups[0]["betas"]) == (ref_opt.param_groups[0]["lr"], ref_opt.param_groups[0]["betas"])
        ref_opt.step(), opt.step()
        ref.step()
        ours.advance(step, elapsed=1e9)  # no limit: the clock is ignored
        assert ours.lr == ref.get_last_lr()[0]
        assert not ours.done(1e9)


def test_one_cycle_ends():
    lr0, m0 = one_cycle(0, 100, **ARGS)
    top, mtop = one_cycle(39, 100, **ARGS)
    end, mend = one_cycle(99, 100, **ARGS)
    assert lr0 == pytest.approx(3e-4) and top == pytest.approx(3e-3) and end == pytest.approx(3e-8)
    assert (m0, mtop, mend) == (pytest.approx(0.95), pytest.approx(0.85), pytest.approx(0.95))
    assert cos_anneal(1.0, 0.0, 0.5) == pytest.approx(0.5)


def test_a_slow_run_moves_through_the_cycle_by_the_clock():
    opt = _opt()
    s = OneCycle(opt, 1000, **ARGS, max_seconds=10.0)
    s.advance(3, elapsed=2.5)  # 3 steps, a quarter of the time: position by the clock
    assert s.position == pytest.approx(999 * 0.25) and not s.done(2.5)
    assert s.lr == pytest.approx(one_cycle(999 * 0.25, 1000, **ARGS)[0])
    s.advance(300, elapsed=1.0)  # ahead of the clock: the step count leads
    assert s.position == 300
    s.advance(5, elapsed=10.0)  # the time is up: the cycle's end, the final learning rate
    assert s.done(10.0) and s.lr == pytest.approx(3e-8) and opt.param_groups[0]["lr"] == s.lr
    assert opt.param_groups[0]["betas"] == (pytest.approx(0.95), 0.99)
