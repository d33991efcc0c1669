// gru.wgsl: the elementwise part of a GRU cell (PyTorch GRUCell, gate order r, z, n) and its
// backward. The two gate matmuls gi = x W_ih^T + b_ih and gh = h W_hh^T + b_hh ([B, 3H] each,
// columns [r | z | n]) run before as ordinary matmuls (ops::matmul::matmul_into, bias fused);
// these kernels fuse everything between them and the next matmul:
//
//   gru_cell (forward)
//     r  = sigmoid(gi_r + gh_r)        z = sigmoid(gi_z + gh_z)
//     n  = tanh(gi_n + r * gh_n)       h' = (1 - z) * n + z * h
//     saved[b] = [r | z | n | gh_n]    ([B, 4H], only with SAVE): everything the backward needs,
//                                       so it never recomputes a matmul or a nonlinearity.
//   gru_cell_backward [backward], from g = dL/dh':
//     dn_pre = g (1 - z) (1 - n^2)     dz_pre = g (h - n) z (1 - z)
//     dr_pre = dn_pre gh_n r (1 - r)
//     dgi = [dr_pre | dz_pre | dn_pre]        dgh = [dr_pre | dz_pre | dn_pre * r]
//     dh (+)= g z                       (the direct z*h path; with HAS_DH, adding with ACC_DH)
//   The matmuls of dgi / dgh (dx, dh, dW_ih, dW_hh) and their column sums (db_ih, db_hh) follow
//   from Rust.
//
// Unfused, this chain is ~10 elementwise dispatches each way (2 adds + sigmoid for r and z,
// mul + add + tanh for n, and the 1-z / mul / mul / add of the update), each streaming [B, H]
// or [B, 3H] tensors through memory; fused it is one pass that reads gi, gh, h once.
//
// Bindings: 0 params (batch, hidden, n = batch * hidden)
//   forward:  1 gi [B,3H] (read), 2 gh [B,3H] (read), 3 h [B,H] (read), 4 h_new [B,H] (rw),
//             5 saved [B,4H] (rw; a 1-element dummy without SAVE)
//   backward: 3 h (read), 6 g [B,H] (read), 7 saved (read), 8 dgi [B,3H] (rw), 9 dgh [B,3H] (rw),
//             10 dh [B,H] (rw; a 1-element dummy without HAS_DH)
// Workgroup (WG,1,1): one thread per (b, j) of the [B, H] state, grid folded by Gpu::grid_1d.
// Consecutive threads touch consecutive j, so every load and store is coalesced.
// Overrides: SAVE (forward writes `saved`), HAS_DH, ACC_DH (backward).

struct Params {
    batch: u32,
    hidden: u32,
    n: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gi: array<f32>;
@group(0) @binding(2) var<storage, read> gh: array<f32>;
@group(0) @binding(3) var<storage, read> h: array<f32>;
@group(0) @binding(4) var<storage, read_write> h_new: array<f32>;
@group(0) @binding(5) var<storage, read_write> saved: array<f32>;
@group(0) @binding(6) var<storage, read> g: array<f32>;
@group(0) @binding(7) var<storage, read> saved_in: array<f32>;
@group(0) @binding(8) var<storage, read_write> dgi: array<f32>;
@group(0) @binding(9) var<storage, read_write> dgh: array<f32>;
@group(0) @binding(10) var<storage, read_write> dh: array<f32>;

override SAVE: bool = true;
override HAS_DH: bool = true;
override ACC_DH: bool = false;

@compute @workgroup_size(WG)
fn gru_cell(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wid, nwg, lid);
    if i >= p.n { return; }
    let H = p.hidden;
    let b = i / H;
    let j = i - b * H;
    let o = b * 3u * H + j;
    let r = sigmoid(gi[o] + gh[o]);
    let z = sigmoid(gi[o + H] + gh[o + H]);
    let ghn = gh[o + 2u * H];
    let n = tanh_s(gi[o + 2u * H] + r * ghn);
    h_new[i] = (1.0 - z) * n + z * h[i];
    if SAVE {
        let s = b * 4u * H + j;
        saved[s] = r;
        saved[s + H] = z;
        saved[s + 2u * H] = n;
        saved[s + 3u * H] = ghn;
    }
}

@compute @workgroup_size(WG)
fn gru_cell_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wid, nwg, lid);
    if i >= p.n { return; }
    let H = p.hidden;
    let b = i / H;
    let j = i - b * H;
    let s = b * 4u * H + j;
    let r = saved_in[s];
    let z = saved_in[s + H];
    let n = saved_in[s + 2u * H];
    let ghn = saved_in[s + 3u * H];
    let gv = g[i];
    let dn_pre = gv * (1.0 - z) * (1.0 - n * n);
    let dz_pre = gv * (h[i] - n) * z * (1.0 - z);
    let dr_pre = dn_pre * ghn * r * (1.0 - r);
    let o = b * 3u * H + j;
    dgi[o] = dr_pre;
    dgi[o + H] = dz_pre;
    dgi[o + 2u * H] = dn_pre;
    dgh[o] = dr_pre;
    dgh[o + H] = dz_pre;
    dgh[o + 2u * H] = dn_pre * r;
    if HAS_DH {
        let d = gv * z;
        if ACC_DH { dh[i] += d; } else { dh[i] = d; }
    }
}
