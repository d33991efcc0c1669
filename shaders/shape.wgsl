// shape.wgsl: strided block copies, the one kernel behind concat and split along the last axis,
// slicing a time step out of [B,T,...] and writing one back (their backwards are the same
// copies in the other direction, with ACC to accumulate gradients).
//
//   copy2d   dst[dst_off + r*dst_stride + c] (+)= src[src_off + r*src_stride + c]
//            for r < rows, c < cols.
// Bindings: 0 params, 1 src (read), 4 dst (read_write). Workgroup (WG,1,1), one thread per
// element, grid folded by Gpu::grid_1d. Overrides: ACC.

struct Params {
    rows: u32,
    cols: u32,
    src_off: u32,
    src_stride: u32,
    dst_off: u32,
    dst_stride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;

override ACC: bool = false;

@compute @workgroup_size(WG)
fn copy2d(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wid, nwg, lid);
    if i >= p.rows * p.cols { return; }
    let r = i / p.cols;
    let c = i - r * p.cols;
    let v = src[p.src_off + r * p.src_stride + c];
    let d = p.dst_off + r * p.dst_stride + c;
    if ACC { dst[d] += v; } else { dst[d] = v; }
}
