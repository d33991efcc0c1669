"""`Dreamer.update(n, progress=...)`: off by default, a callable `(done, total)` between the
updates (its exceptions stop them), or `True` for a text bar on `sys.stderr`."""

import numpy as np
import pytest

import rssm


@pytest.fixture(scope="module")
def agent(device):
    """A tiny agent whose replay holds one episode long enough to train on."""
    cfg = rssm.Config("tiny", seed=2)
    agent = rssm.Dreamer(action_dim=1, config=cfg, device=device, behaviour_warmup=2)
    rng = np.random.default_rng(0)
    frame = lambda: rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    agent.observe(frame())
    for i in range(cfg.seq_len + 2):
        agent.observe(frame(), rng.uniform(-1, 1, 1), 0.1, False, i == cfg.seq_len + 1)
    assert agent.can_update
    return agent


def test_a_callable_hears_of_every_update(agent):
    calls = []
    before = agent.updates
    m = agent.update(3, progress=lambda done, total: calls.append((done, total, agent.updates)))
    assert [(d, t) for d, t, _ in calls] == [(0, 3), (1, 3), (2, 3), (3, 3)]
    # Called between the updates, with the agent free to use: each sees the updates so far.
    assert [u - before for _, _, u in calls] == [0, 1, 2, 3]
    assert m["updates"] == 3 and agent.updates == before + 3
    assert agent.update(0, progress=lambda d, t: calls.append((d, t, 0)))["updates"] == 0
    assert len(calls) == 4


def test_an_exception_in_the_callable_stops_the_updates(agent):
    before = agent.updates

    class Stop(Exception):
        pass

    def stop_at_two(done, total):
        if done == 2:
            raise Stop("enough")

    with pytest.raises(Stop, match="enough"):
        agent.update(5, progress=stop_at_two)
    assert agent.updates == before + 2


def test_the_text_bar_goes_to_stderr_and_is_off_by_default(agent, capsys):
    agent.update(2)
    agent.update(2, progress=False)
    agent.update(2, progress=None)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    agent.update(3, progress=True)
    out = capsys.readouterr()
    assert out.out == ""
    assert "Dreamer.update 0/3 [" in out.err and "Dreamer.update 3/3 [" + "#" * 30 + "]" in out.err
    assert out.err.endswith("\n") and out.err.count("\n") == 1


def test_a_bad_progress_argument_is_a_type_error(agent):
    before = agent.updates
    with pytest.raises(TypeError, match="progress: expected None, a bool or a callable"):
        agent.update(1, progress="yes")
    assert agent.updates == before
