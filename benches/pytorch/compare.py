#!/usr/bin/env python3
"""The engine's benchmark workloads side by side with the same model in PyTorch.

Runs `rssm bench --json` (or reads its output from --engine-json), then builds the
specification's model in PyTorch with its own code below (sizes, the loss with KL
balancing and free nats, Adam, global-norm clipping, the behaviour update with lambda-returns),
times the same workloads eager and with `torch.compile`, and prints one table with ratios.

Ratios are PyTorch ms / rssm ms: above 1 the engine is faster.

    python benches/pytorch/compare.py --rssm target/release/rssm            # CPU, 2 threads
    python benches/pytorch/compare.py --device cuda --peak-tflops 67        # a GPU

The PyTorch side runs on the CPU with --threads threads (default: the machine's cores) unless
--device picks cuda or mps (default: cuda or mps when present). Timing is wall clock around
each step, after one warm-up, with a device synchronise before the clock stops.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------- the model


class Cfg:
    """The specification's sizes (DreamerV1 on 64x64 pixels)."""

    deter = 200
    stoch = 30
    hidden = 200
    depth = 32
    units = 400
    min_std = 0.1
    action_dim = 1
    free_nats = 3.0
    kl_balance = 0.8
    kl_scale = 1.0
    lr = 6e-4
    clip = 100.0
    gamma = 0.99
    lam = 0.95
    behaviour_lr = 8e-5

    @property
    def embed(self):
        return 32 * self.depth

    @property
    def feat(self):
        return self.stoch + self.deter


def mlp(inp, units, layers, out):
    mods, width = [], inp
    for _ in range(layers):
        mods += [nn.Linear(width, units), nn.ELU()]
        width = units
    mods.append(nn.Linear(width, out))
    return nn.Sequential(*mods)


def xavier(module):
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


class WorldModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        d = c.depth
        self.encoder = nn.Sequential(
            nn.Conv2d(3, d, 4, 2), nn.ReLU(),
            nn.Conv2d(d, 2 * d, 4, 2), nn.ReLU(),
            nn.Conv2d(2 * d, 4 * d, 4, 2), nn.ReLU(),
            nn.Conv2d(4 * d, 8 * d, 4, 2), nn.ReLU(),
            nn.Flatten(),
        )
        self.decoder_linear = nn.Linear(c.feat, c.embed)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(c.embed, 4 * d, 5, 2), nn.ReLU(),
            nn.ConvTranspose2d(4 * d, 2 * d, 5, 2), nn.ReLU(),
            nn.ConvTranspose2d(2 * d, d, 6, 2), nn.ReLU(),
            nn.ConvTranspose2d(d, 3, 6, 2),
        )
        self.img_in = nn.Linear(c.stoch + c.action_dim, c.hidden)
        self.gru = nn.GRUCell(c.hidden, c.deter)  # PyTorch's own init: U(+-1/sqrt(deter))
        self.img_out = nn.Linear(c.deter, c.hidden)
        self.img_stats = nn.Linear(c.hidden, 2 * c.stoch)
        self.obs_out = nn.Linear(c.deter + c.embed, c.hidden)
        self.obs_stats = nn.Linear(c.hidden, 2 * c.stoch)
        self.reward = mlp(c.feat, c.units, 2, 1)
        self.cont = mlp(c.feat, c.units, 3, 1)
        for m in [self.encoder, self.decoder_linear, self.decoder, self.img_in, self.img_out,
                  self.img_stats, self.obs_out, self.obs_stats, self.reward, self.cont]:
            xavier(m)
        # The per-step functions are what torch.compile compiles (see `compiled`).
        self.img_step_fn = self.img_step
        self.obs_step_fn = self.obs_step
        self.encode_fn = self.encoder
        self.decode_fn = self.decode

    def stats(self, x):
        mean, raw = x.chunk(2, -1)
        return mean, F.softplus(raw) + self.c.min_std

    def img_step(self, s, a, h):
        x = F.elu(self.img_in(torch.cat([s, a], -1)))
        h = self.gru(x, h)
        mean, std = self.stats(self.img_stats(F.elu(self.img_out(h))))
        return h, mean, std

    def obs_step(self, h, e):
        return self.stats(self.obs_stats(F.elu(self.obs_out(torch.cat([h, e], -1)))))

    def decode(self, feat):
        x = self.decoder_linear(feat)
        return self.decoder(x.reshape(x.shape[0], -1, 1, 1))

    def observe(self, embed, action, eps):
        b, t = embed.shape[:2]
        h = embed.new_zeros(b, self.c.deter)
        s = embed.new_zeros(b, self.c.stoch)
        hs, ss, qm, qs, pm, ps = [], [], [], [], [], []
        for i in range(t):
            h, p_mean, p_std = self.img_step_fn(s, action[:, i], h)
            q_mean, q_std = self.obs_step_fn(h, embed[:, i])
            s = q_mean + q_std * eps[:, i]
            hs.append(h), ss.append(s), qm.append(q_mean), qs.append(q_std)
            pm.append(p_mean), ps.append(p_std)
        st = lambda xs: torch.stack(xs, 1)  # noqa: E731
        return st(hs), st(ss), st(qm), st(qs), st(pm), st(ps)

    def loss(self, obs, action, reward, cont, eps):
        c = self.c
        b, t = obs.shape[:2]
        n = b * t
        images = obs.reshape(n, 3, 64, 64)
        embed = self.encode_fn(images).reshape(b, t, -1)
        hs, ss, qm, qs, pm, ps = self.observe(embed, action, eps)
        feat = torch.cat([ss, hs], -1).reshape(n, -1)
        decoded = self.decode_fn(feat)
        image_nll = 0.5 * (images - decoded).pow(2).sum((1, 2, 3))
        reward_nll = 0.5 * (reward.reshape(n) - self.reward(feat).squeeze(-1)).pow(2)
        cont_nll = F.binary_cross_entropy_with_logits(
            self.cont(feat).squeeze(-1), cont.reshape(n), reduction="none")

        def kl(mq, sq, mp, sp):
            return (torch.log(sp / sq) + (sq.pow(2) + (mq - mp).pow(2)) / (2 * sp.pow(2))
                    - 0.5).sum(-1).mean()

        lhs = kl(qm.detach(), qs.detach(), pm, ps)  # trains the prior
        rhs = kl(qm, qs, pm.detach(), ps.detach())  # regularises the posterior
        free = torch.tensor(c.free_nats, device=obs.device)
        kl_loss = (c.kl_balance * torch.maximum(free, lhs)
                   + (1 - c.kl_balance) * torch.maximum(free, rhs))
        return (image_nll + reward_nll + cont_nll).mean() + c.kl_scale * kl_loss


class Agent(nn.Module):
    """Actor and critic of the specification."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        self.actor = mlp(c.feat, c.units, 4, 2 * c.action_dim)
        self.critic = mlp(c.feat, c.units, 3, 1)
        xavier(self)
        self.init_std_raw = math.log(math.exp(5.0) - 1.0)

    def act(self, feat, eps):
        m, r = self.actor(feat.detach()).chunk(2, -1)  # the actor sees sg(feat)
        mean = 5 * torch.tanh(m / 5)
        std = F.softplus(r + self.init_std_raw) + 1e-4
        return torch.tanh(mean + std * eps)


def imagine(wm, agent, h, s, horizon):
    c = wm.c
    feats = [torch.cat([s, h], -1)]
    for t in range(horizon):
        a = agent.act(feats[t], torch.randn(h.shape[0], c.action_dim, device=h.device))
        h, mean, std = wm.img_step_fn(s, a, h)
        s = mean + std * torch.randn_like(mean)
        feats.append(torch.cat([s, h], -1))
    return torch.stack(feats)  # [H+1, N, feat]


def lambda_returns(reward, gamma, value, lam):
    """R_t = r_t + gamma_t ((1 - lam) v_{t+1} + lam R_{t+1}), R_H = v_H; `[H, N]`."""
    horizon = reward.shape[0] - 1
    nxt, out = value[horizon], []
    for t in reversed(range(horizon)):
        nxt = reward[t] + gamma[t] * ((1 - lam) * value[t + 1] + lam * nxt)
        out.append(nxt)
    return torch.stack(out[::-1])


def behaviour_update(wm, agent, opt_actor, opt_critic, h0, s0, horizon):
    c = wm.c
    feats = imagine(wm, agent, h0.detach(), s0.detach(), horizon)
    reward = wm.reward(feats).squeeze(-1)
    cont_logit = wm.cont(feats).squeeze(-1)
    gammas = c.gamma * torch.sigmoid(cont_logit)
    value = agent.critic(feats).squeeze(-1)
    returns = lambda_returns(reward, gammas, value, c.lam)
    with torch.no_grad():
        g = gammas[:-1]
        weight = torch.cumprod(torch.cat([torch.ones_like(g[:1]), g[:-1]]), 0)
    actor_loss = -(weight * returns).mean()
    opt_actor.zero_grad(set_to_none=True)
    actor_loss.backward(inputs=list(agent.actor.parameters()))
    nn.utils.clip_grad_norm_(agent.actor.parameters(), c.clip)
    # The critic on the detached features of steps 0..H-1 (before its update, as above).
    v = agent.critic(feats[:-1].detach()).squeeze(-1)
    critic_loss = 0.5 * (weight * (v - returns.detach()).pow(2)).mean()
    opt_critic.zero_grad(set_to_none=True)
    critic_loss.backward()
    nn.utils.clip_grad_norm_(agent.critic.parameters(), c.clip)
    opt_actor.step()
    opt_critic.step()
    return actor_loss.detach()


# ----------------------------------------------------------------------------- timing


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    elif device.type == "mps":
        torch.mps.synchronize()


def time_it(fn, reps, device):
    fn()  # warm-up (and compilation)
    sync(device)
    total = 0.0
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync(device)
        total += time.perf_counter() - t0
    return total * 1e3 / reps


def torch_workloads(args, device, compiled):
    """ms per step of each workload: {name: ms}."""
    torch.manual_seed(0)
    c = Cfg()
    wm = WorldModel(c).to(device)
    agent = Agent(c).to(device)
    if compiled:
        # Compile the per-step pieces (the loops stay in Python, as unrolling 50 or 1,000 steps
        # into one graph takes longer to compile than to run); backward goes through
        # AOTAutograd.
        wm.img_step_fn = torch.compile(wm.img_step, dynamic=False)
        wm.obs_step_fn = torch.compile(wm.obs_step, dynamic=False)
        wm.encode_fn = torch.compile(wm.encoder, dynamic=False)
        wm.decode_fn = torch.compile(wm.decode, dynamic=False)
    b, t = args.batch, args.seq_len
    obs = torch.full((b, t, 3, 64, 64), 0.1, device=device)
    action = torch.full((b, t, c.action_dim), 0.5, device=device)
    reward = torch.ones(b, t, device=device)
    cont = torch.ones(b, t, device=device)
    opt = torch.optim.Adam(wm.parameters(), lr=c.lr, eps=1e-8)
    out = {}
    wanted = set(args.workloads)

    def train():
        eps = torch.randn(b, t, c.stoch, device=device)
        loss = wm.loss(obs, action, reward, cont, eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(wm.parameters(), c.clip)
        opt.step()
        return loss.item()

    if "train" in wanted:
        out["train"] = time_it(train, args.reps, device)
        print(f"torch {'compiled' if compiled else 'eager'}: train {out['train']:.1f} ms",
              file=sys.stderr)

    def observe():
        with torch.no_grad():
            n = b * t
            embed = wm.encode_fn(obs.reshape(n, 3, 64, 64)).reshape(b, t, -1)
            eps = torch.zeros(b, t, c.stoch, device=device)
            hs = wm.observe(embed, action, eps)[0]
            return hs[:, -1, :1].cpu()

    if "observe" in wanted:
        out["observe"] = time_it(observe, args.reps, device)
        print(f"torch {'compiled' if compiled else 'eager'}: observe {out['observe']:.1f} ms",
              file=sys.stderr)

    # Start states: the posterior of one observe pass.
    with torch.no_grad():
        n = b * t
        embed = wm.encoder(obs.reshape(n, 3, 64, 64)).reshape(b, t, -1)
        hs, ss = wm.observe(embed, action, torch.randn(b, t, c.stoch, device=device))[:2]
        h0, s0 = hs.reshape(n, -1).contiguous(), ss.reshape(n, -1).contiguous()
    for p in wm.parameters():
        p.requires_grad_(False)  # frozen during behaviour learning
    opt_a = torch.optim.Adam(agent.actor.parameters(), lr=c.behaviour_lr, eps=1e-8)
    opt_c = torch.optim.Adam(agent.critic.parameters(), lr=c.behaviour_lr, eps=1e-8)
    if "behaviour" in wanted:
        out["behaviour"] = time_it(
            lambda: behaviour_update(wm, agent, opt_a, opt_c, h0, s0, args.horizon).item(),
            args.reps, device)
        print(f"torch {'compiled' if compiled else 'eager'}: behaviour "
              f"{out['behaviour']:.1f} ms", file=sys.stderr)

    def long_imagination():
        with torch.no_grad():
            k = args.imagine_starts
            feats = imagine(wm, agent, h0[:k], s0[:k], args.imagine_steps)
            r = wm.reward(feats)
            wm.cont(feats)
            return r[-1, :1].cpu()

    if "imagine" in wanted:
        out["imagine"] = time_it(long_imagination, args.reps, device)
        print(f"torch {'compiled' if compiled else 'eager'}: imagine {out['imagine']:.1f} ms",
              file=sys.stderr)

    if "matmul" in wanted:
        a = torch.full((512, 512), 0.01, device=device)
        bb = torch.full((512, 512), 0.02, device=device)
        mm = torch.compile(torch.mm, dynamic=False) if compiled else torch.mm

        def ten_matmuls():
            for _ in range(10):
                cc = mm(a, bb)
            return cc[0, :1].cpu()

        out["matmul"] = time_it(ten_matmuls, args.reps, device)
    return out


# ----------------------------------------------------------------------------- the engine


def engine_report(args):
    if args.engine_json:
        with open(args.engine_json) as f:
            return json.load(f)
    cmd = [args.rssm, "bench", "--json", "--wall-only", "--presets", "dreamer",
           "--batch", str(args.batch), "--seq-len", str(args.seq_len),
           "--horizon", str(args.horizon), "--imagine-starts", str(args.imagine_starts),
           "--imagine-steps", str(args.imagine_steps), "--reps", str(args.reps),
           "--workloads", ",".join(args.workloads)]
    if args.adapter:
        cmd += ["--adapter", args.adapter]
    print("running:", " ".join(cmd), file=sys.stderr)
    res = subprocess.run(cmd, stdout=subprocess.PIPE, check=True, text=True)
    return json.loads(res.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rssm", default="target/release/rssm", help="the rssm binary")
    ap.add_argument("--engine-json", help="read `rssm bench --json` output instead of running it")
    ap.add_argument("--adapter", help="passed to rssm --adapter")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="PyTorch CPU threads")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=50)
    ap.add_argument("--horizon", type=int, default=15)
    ap.add_argument("--imagine-starts", type=int, default=16)
    ap.add_argument("--imagine-steps", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--workloads", default="train,observe,behaviour,imagine,matmul")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--peak-tflops", type=float,
                    help="the device's fp32 peak: adds the floor FLOPs / peak to the table")
    ap.add_argument("--out-json", help="also write every figure here")
    args = ap.parse_args()
    args.workloads = args.workloads.split(",")

    if args.device == "auto":
        if torch.cuda.is_available():
            args.device = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            args.device = "mps"
        else:
            args.device = "cpu"
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)

    engine = engine_report(args)  # first the engine, then PyTorch: one after the other
    eager = torch_workloads(args, device, compiled=False)
    compiled, compile_error = {}, None
    if not args.no_compile:
        try:
            compiled = torch_workloads(args, device, compiled=True)
        except Exception as e:  # noqa: BLE001 - report and go on without the column
            compile_error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            print(f"torch.compile failed: {compile_error}", file=sys.stderr)

    if device.type == "cuda":
        torch_dev = torch.cuda.get_device_name(0)
    else:
        torch_dev = f"CPU, {torch.get_num_threads()} threads"
    print(f"rssm: {engine['adapter']} ({engine['backend']}, {engine['device_type']}), "
          f"RSSM path {engine.get('rssm_path', '?')}; rssm ms = wall clock per step (record, "
          "submit, wait, read back)")
    tunings = engine.get("tunings") or []
    choices = "; ".join(f"{t['preset']}: {t['tuning']}" for t in tunings)
    print(f"rssm kernel choices: {choices or engine.get('tuning', '?')}")
    print(f"PyTorch {torch.__version__}: {torch_dev}; wall clock"
          + (f"; torch.compile failed: {compile_error}" if compile_error else ""))
    print()
    gpu_ms = any(r.get("gpu_ms") is not None for r in engine["results"])
    head = ["workload", "size", "GFLOP", "rssm ms", "rssm GFLOP/s", "torch eager ms",
            "eager / rssm", "torch compile ms", "compile / rssm"]
    if gpu_ms:
        head += ["rssm GPU-timestamp ms"]
    if args.peak_tflops:
        head += ["fp32 floor ms"]
    print("| " + " | ".join(head) + " |")
    print("| " + " | ".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + " |")
    rows = []
    for r in engine["results"]:
        w = r["workload"]
        ms = r["wall_ms"]
        e, c = eager.get(w), compiled.get(w)
        fmt = lambda v: f"{v:.1f}" if v is not None else "n/a"  # noqa: E731
        ratio = lambda v: f"{v / ms:.2f}x" if v is not None else "n/a"  # noqa: E731
        cells = [w, r["size"], f"{r['gflop']:.2f}", fmt(ms), f"{r['gflop'] / ms * 1e3:.1f}",
                 fmt(e), ratio(e), fmt(c), ratio(c)]
        if gpu_ms:
            cells.append(fmt(r.get("gpu_ms")))
        if args.peak_tflops:
            cells.append(f"{r['gflop'] / (args.peak_tflops * 1e3) * 1e3:.2f}")
        print("| " + " | ".join(cells) + " |")
        rows.append({"workload": w, "size": r["size"], "gflop": r["gflop"], "rssm_ms": ms,
                     "torch_eager_ms": e, "torch_compile_ms": c})
    if args.out_json:
        tmp = args.out_json + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"engine": engine, "torch": {"version": torch.__version__,
                                                   "device": torch_dev, "eager": eager,
                                                   "compiled": compiled,
                                                   "compile_error": compile_error},
                       "rows": rows}, f, indent=1)
        os.replace(tmp, args.out_json)


if __name__ == "__main__":
    main()
