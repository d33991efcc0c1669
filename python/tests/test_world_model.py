"""The world model from Python: the same numbers as the command line, the same checkpoints."""

import json

import numpy as np
import pytest

import rssm
from conftest import make_batch, read_safetensors, write_safetensors

TERMS = ["loss", "image_nll", "reward_nll", "cont_nll", "kl", "kl_loss"]


def tiny(action_dim=2, **keys):
    return rssm.Config("tiny", action_dim=action_dim, **keys)


def test_device_reports_the_adapter(device):
    info = device.info()
    assert info["name"] and info["backend"]
    assert isinstance(info["is_cpu"], bool)
    assert info["subgroup_lanes"] is None or info["subgroup_lanes"] >= 1
    assert info["matmul_kernel"].startswith(("subgroup lanes", "register blocks"))
    assert "rssm.Device(" in repr(device)


def test_tune_modes_train_alike(tmp_path, monkeypatch, run_cli):
    """`Device(tune=...)`: "auto" takes the kernel choices `rssm tune` cached for the
    configuration, "off" the device's rules; both train alike. A bad mode is refused by name."""
    monkeypatch.setenv("RSSM_CACHE_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="tune mode 'fast'"):
        rssm.Device(tune="fast")
    run_cli("tune", "--preset", "tiny", "--budget", "5")
    assert (tmp_path / "tuning.json").is_file()
    cfg = tiny(seed=3)
    batch = make_batch(cfg, seed=1)
    losses = []
    for tune in ("off", "auto"):
        wm = rssm.WorldModel(cfg, device=rssm.Device(tune=tune))
        m = wm.train_step(batch["frames"], batch["action"], batch["reward"], batch["cont"])
        losses.append(m["loss"])
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)


def test_config_takes_the_spec_keys_and_rejects_unknown_ones():
    c = rssm.Config("small", deter=64, seed=3)
    assert (c.deter, c.seed, c.stoch) == (64, 3, 16)
    assert c.to_dict()["deter"] == 64
    assert json.loads(c.to_json())["deter"] == 64
    assert c.replace(deter=32).deter == 32 and c.deter == 64
    with pytest.raises(ValueError, match="detr"):
        rssm.Config("small", detr=64)
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        rssm.Config("huge")
    with pytest.raises(ValueError, match="deter must be in 1..="):
        rssm.Config("tiny", deter=0)
    with pytest.raises(ValueError, match="min_std"):
        rssm.Config("tiny", min_std="big")


def test_train_step_matches_rssm_evaluate(tmp_path, device, run_cli):
    """The loss terms train_step returns are the ones `rssm evaluate` computes on the same
    batch and checkpoint (a fresh model: train_step reports the loss before its update)."""
    cfg = tiny(seed=5)
    for with_eps in (True, False):
        wm = rssm.WorldModel(cfg, device=device)
        ckpt = tmp_path / f"wm{with_eps}"
        wm.save(ckpt)
        (tmp_path / "c.json").write_text(cfg.to_json())
        batch = make_batch(cfg, seed=1, with_eps=with_eps)
        write_safetensors(tmp_path / "batch.safetensors", {k: v for k, v in batch.items() if k != "frames"})
        out = tmp_path / "grads.safetensors"
        run_cli("evaluate", "--config", tmp_path / "c.json", "--checkpoint", ckpt / "checkpoint.safetensors",
                "--batch", tmp_path / "batch.safetensors", "--out", out)
        cli = read_safetensors(out)
        # uint8 frames in, and the engine's float layout in: the same step.
        py = wm.train_step(batch["frames"], batch["action"], batch["reward"], batch["cont"], eps=batch.get("eps"))
        for k in TERMS:
            assert py[k] == pytest.approx(float(cli[k][0]), rel=1e-5, abs=1e-5), (k, with_eps)
        assert py["step"] == 1 and wm.step == 1
        wm2 = rssm.WorldModel.load(ckpt, device=device)
        py2 = wm2.train_step(batch["obs"], batch["action"], batch["reward"], batch["cont"], eps=batch.get("eps"))
        for k in TERMS + ["grad_norm"]:
            assert py2[k] == pytest.approx(py[k], rel=1e-6, abs=1e-6), k


def test_a_python_checkpoint_runs_in_the_cli_and_a_cli_one_in_python(tmp_path, device, run_cli):
    # Python -> CLI: a trained world model dreams in `rssm imagine` (the built-in pendulum has
    # one action component) and `rssm train --resume` continues it.
    cfg = tiny(action_dim=1)
    wm = rssm.WorldModel(cfg, device=device)
    batch = make_batch(cfg, seed=2)
    for _ in range(3):
        wm.train_step(batch["frames"], batch["action"], batch["reward"], batch["cont"])
    ckpt = tmp_path / "py" / "checkpoint"
    wm.save(ckpt)
    p = run_cli("imagine", "--checkpoint", ckpt, "--steps", "4", "--out", tmp_path / "dream.png")
    assert "wrote" in p.stdout
    assert (tmp_path / "dream.png").read_bytes()[1:4] == b"PNG"
    p = run_cli("train", "--preset", "tiny", "--episodes", "2", "--steps", "5", "--save-every", "1",
                "--logdir", tmp_path / "py", "--resume")
    # CLI -> Python: the checkpoint `rssm train` wrote loads with its step and configuration.
    back = rssm.WorldModel.load(ckpt, device=device)
    assert back.step == 5
    assert back.config == cfg
    # The same weights give the same loss in both.
    (tmp_path / "c.json").write_text(cfg.to_json())
    b = make_batch(cfg, seed=3, with_eps=True)
    write_safetensors(tmp_path / "b.safetensors", {k: v for k, v in b.items() if k != "frames"})
    run_cli("evaluate", "--config", tmp_path / "c.json", "--checkpoint", ckpt / "checkpoint.safetensors",
            "--batch", tmp_path / "b.safetensors", "--out", tmp_path / "g.safetensors")
    cli = read_safetensors(tmp_path / "g.safetensors")
    py = back.train_step(b["frames"], b["action"], b["reward"], b["cont"], eps=b["eps"])
    for k in TERMS:
        assert py[k] == pytest.approx(float(cli[k][0]), rel=1e-5, abs=1e-5), k
    # A weights file alone loads with its configuration.
    w = rssm.WorldModel.load(ckpt / "checkpoint.safetensors", config=cfg, device=device)
    assert w.step == 0
    with pytest.raises(ValueError, match="config="):
        rssm.WorldModel.load(ckpt / "checkpoint.safetensors", device=device)


def test_a_device_profile_chooses_as_that_device_with_the_same_numbers(device):
    """Device(profile=...) runs as that class of device (its limits, subgroup width and type
    decide the kernels: on `nvidia` the GPU rules and the fused RSSM) and train_step gives the
    device's own numbers; a profile that cannot run the engine says why; an unknown name lists
    the profiles."""
    nv = rssm.Device(profile="nvidia")
    info = nv.info()
    assert info["profile"] == "nvidia" and not info["is_cpu"] and info["subgroup_lanes"] == 32
    assert "path=fused" in info["tuning"] and info["matmul_kernel"].startswith("register blocks")
    assert device.info()["profile"] is None and device.info()["closest_profile"]
    cfg = tiny(seed=7)
    b = make_batch(cfg, seed=8, with_eps=True)
    own, under = (
        rssm.WorldModel(cfg, device=d).train_step(b["frames"], b["action"], b["reward"], b["cont"], eps=b["eps"])
        for d in (device, nv)
    )
    for k in TERMS + ["grad_norm"]:
        assert under[k] == pytest.approx(own[k], rel=1e-5, abs=1e-6), k
    with pytest.raises(rssm.EngineError, match="max_storage_buffers_per_shader_stage"):
        wm = rssm.WorldModel(cfg, device=rssm.Device(profile="downlevel"))
        wm.train_step(b["frames"], b["action"], b["reward"], b["cont"], eps=b["eps"])
    with pytest.raises(ValueError, match="the profiles are webgpu, downlevel"):
        rssm.Device(profile="gtx")


def test_observe_and_imagine(device):
    cfg = tiny()
    wm = rssm.WorldModel(cfg, device=device)
    b = make_batch(cfg, b=2, t=4, seed=4)
    o = wm.observe(b["frames"], b["action"])
    assert o["deter"].shape == (2, 4, cfg.deter) and o["stoch"].shape == (2, 4, cfg.stoch)
    assert o["prior_mean"].shape == (2, 4, cfg.stoch)
    assert o["decoded"].shape == (2, 4, 64, 64, 3) and o["decoded"].dtype == np.uint8
    # Deterministic (posterior means) unless sampled.
    o2 = wm.observe(b["frames"], b["action"])
    np.testing.assert_array_equal(o["deter"], o2["deter"])
    frames = wm.imagine(o, actions=np.zeros((2, 6, cfg.action_dim), np.float32))
    assert frames.shape == (2, 6, 64, 64, 3) and frames.dtype == np.uint8
    again = wm.imagine((o["deter"][:, -1], o["stoch"][:, -1]), actions=np.zeros((2, 6, cfg.action_dim)))
    np.testing.assert_array_equal(frames, again)
    agent = rssm.Dreamer(action_dim=cfg.action_dim, config=cfg, device=device)
    dreamt = wm.imagine(o, actor=agent, steps=3)
    assert dreamt.shape == (2, 3, 64, 64, 3)
    with pytest.raises(ValueError, match="exactly one of actions"):
        wm.imagine(o, steps=3)
    with pytest.raises(ValueError, match="steps"):
        wm.imagine(o, actor=agent)
    with pytest.raises(ValueError, match=r"actions: expected a float array of shape \(B, steps, A\) = \(2, 6, 2\), got float64 array of shape \(2, 6, 3\)"):
        wm.imagine(o, actions=np.zeros((2, 6, 3)))
    other = rssm.Dreamer(action_dim=3, config=cfg, device=device)
    with pytest.raises(ValueError, match="does not fit the world model"):
        wm.imagine(o, actor=other, steps=2)


def test_bad_arrays_raise_value_errors_that_name_them(device):
    cfg = tiny()
    wm = rssm.WorldModel(cfg, device=device)
    b = make_batch(cfg, b=2, t=3)
    f, a, r, c = b["frames"], b["action"], b["reward"], b["cont"]
    cases = [
        ((f.astype(np.float64), a, r, c), r"obs: expected a uint8 array of shape \(B, T, 64, 64, 3\) or a float array of shape \(B, T, 3, 64, 64\).*got float64 array of shape \(2, 3, 64, 64, 3\)"),
        ((f[:, :, :32], a, r, c), r"obs: .*got uint8 array of shape \(2, 3, 32, 64, 3\)"),
        ((b["obs"] * 4, a, r, c), r"obs: float observations must lie in \[-0.5, 0.5\]"),
        ((f, a[:, :, :1], r, c), r"action: expected a float array of shape \(B, T, A\) = \(2, 3, 2\), got float32 array of shape \(2, 3, 1\)"),
        ((f, a, r[:, :2], c), r"reward: expected a float array of shape \(B, T\) = \(2, 3\), got float32 array of shape \(2, 2\)"),
        ((f, a, np.where(r > 0, np.nan, r), c), r"reward: values must be finite, found NaN at index \("),
        ((f, a, r, c * 2), r"cont: values must lie in \[0, 1\]"),
        ((f, a.astype(str), r, c), r"action: expected a float array.*got <U"),
    ]
    for args, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            wm.train_step(*args)
    with pytest.raises(ValueError, match=r"eps: expected a float array of shape \(B, T, stoch\) = \(2, 3, 3\), got float64 array of shape \(2, 3\)"):
        wm.train_step(f, a, r, c, eps=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="inf"):
        wm.train_step(f, a, r, c, eps=np.full((2, 3, 3), np.inf))
    # Nothing was trained by the failed calls.
    assert wm.step == 0
    with pytest.raises(ValueError, match="action_dim"):
        rssm.WorldModel(rssm.Config("tiny", action_dim=0), device=device)


def test_engine_errors_become_python_exceptions(tmp_path, device):
    with pytest.raises(OSError, match="nowhere"):
        rssm.WorldModel.load(tmp_path / "nowhere", config=tiny(), device=device)
    with pytest.raises(OSError, match="not a checkpoint folder"):
        rssm.WorldModel.load(tmp_path, device=device)
    wm = rssm.WorldModel(tiny(), device=device)
    wm.save(tmp_path / "wm")
    # A world-model checkpoint has no actor.
    with pytest.raises(OSError, match="actor.safetensors"):
        rssm.Policy.load(tmp_path / "wm", device=device)
    # A checkpoint of another configuration.
    with pytest.raises(ValueError, match="trained with"):
        rssm.WorldModel.load(tmp_path / "wm", config=tiny(deter=7), device=device)
    # A corrupt weights file.
    (tmp_path / "wm" / "checkpoint.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(OSError, match="checkpoint.safetensors"):
        rssm.WorldModel.load(tmp_path / "wm", device=device)
    with pytest.raises(rssm.EngineError, match="no-such-adapter-xyz"):
        rssm.Device(adapter="no-such-adapter-xyz")


def test_a_panic_in_the_engine_is_an_exception_not_a_crash():
    with pytest.raises(rssm.EngineError, match="internal error in the rssm engine: a deliberate panic"):
        rssm._engine_panic()
    # The interpreter and the module go on working.
    assert rssm.Config("tiny").deter == 4
