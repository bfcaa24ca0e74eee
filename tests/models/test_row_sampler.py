"""RowSampler: seeded per-row sampling in one vectorised step (image codes of every backend)."""

import torch

from seer.models._text import RowSampler


def _generators(*seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_a_row_depends_on_its_seed_and_distribution_only():
    probs = torch.softmax(torch.randn(3, 50, generator=torch.Generator().manual_seed(0)), -1)
    together, alone = RowSampler(_generators(1, 2, 3), 4), RowSampler(_generators(2), 4)
    for _ in range(4):
        assert together(probs)[1] == alone(probs[1:2])[0]
    again = RowSampler(_generators(1, 2, 3), 4)
    first = RowSampler(_generators(1, 2, 3), 4)
    assert torch.equal(again(probs), first(probs))


def test_zero_probability_entries_are_never_drawn():
    probs = torch.tensor([[0.0, 0.5, 0.0, 0.5, 0.0]]).repeat(2000, 1)
    drawn = RowSampler(_generators(*range(2000)), 1)(probs)
    assert set(drawn.tolist()) == {1, 3}


def test_draws_follow_the_distribution():
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    n = 20000
    drawn = RowSampler(_generators(*range(n)), 1)(probs.repeat(n, 1))
    freq = torch.bincount(drawn, minlength=4).float() / n
    # Four standard errors of a share p over n draws is at most 0.014 here.
    assert torch.allclose(freq, probs, atol=0.015), freq


def test_unnormalised_rows_are_read_as_their_shares():
    weights = torch.tensor([[0.0, 3.0, 1.0]]).repeat(4000, 1)
    drawn = RowSampler(_generators(*range(4000)), 1)(weights)
    assert abs((drawn == 1).float().mean().item() - 0.75) < 0.03
