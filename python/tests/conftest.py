"""Shared fixtures: the `rssm` command-line binary, safetensors files written and read with
numpy alone, and small batches."""

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rssm

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "examples" / "python"))


def write_safetensors(path, tensors):
    """float32 tensors into a safetensors file (the format `rssm evaluate --batch` reads)."""
    header, blobs, offset = {}, [], 0
    for name, arr in tensors.items():
        a = np.ascontiguousarray(arr, dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        blobs.append(a.tobytes())
        offset += a.nbytes
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """Every float32 tensor of a safetensors file, as numpy arrays."""
    data = Path(path).read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        assert meta["dtype"] == "F32", (name, meta["dtype"])
        s, e = meta["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + s : 8 + n + e], dtype="<f4").reshape(meta["shape"])
    return out


@pytest.fixture(scope="session")
def rssm_bin():
    """The `rssm` command: $RSSM_BIN, else the repository's debug or release build."""
    env = os.environ.get("RSSM_BIN")
    candidates = [env] if env else [REPO / "target" / "debug" / "rssm", REPO / "target" / "release" / "rssm"]
    for c in candidates:
        if c and Path(c).is_file():
            return str(c)
    found = shutil.which("rssm")
    if found:
        return found
    pytest.fail("no rssm binary: run `cargo build` at the repository root or set RSSM_BIN")


@pytest.fixture(scope="session")
def run_cli(rssm_bin):
    def run(*args, ok=True):
        p = subprocess.run([rssm_bin, *map(str, args)], capture_output=True, text=True, timeout=600)
        if ok and p.returncode != 0:
            raise AssertionError(f"rssm {' '.join(map(str, args))} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    return run


@pytest.fixture(scope="session")
def device():
    return rssm.Device()


def make_batch(cfg, b=None, t=None, seed=0, with_eps=False):
    """A random batch for `cfg`: uint8 HWC frames and the engine's float CHW view of them."""
    rng = np.random.default_rng(seed)
    b = b or cfg.batch
    t = t or cfg.seq_len
    frames = rng.integers(0, 256, size=(b, t, 64, 64, 3), dtype=np.uint8)
    batch = {
        "frames": frames,
        "obs": (frames.transpose(0, 1, 4, 2, 3).astype(np.float32) / 255.0 - 0.5),
        "action": rng.uniform(-1, 1, size=(b, t, cfg.action_dim)).astype(np.float32),
        "reward": rng.normal(size=(b, t)).astype(np.float32),
        "cont": (rng.random((b, t)) > 0.1).astype(np.float32),
    }
    if with_eps:
        batch["eps"] = rng.normal(size=(b, t, cfg.stoch)).astype(np.float32)
    return batch
