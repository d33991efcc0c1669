// probe.wgsl: what a driver does that its limits do not report, measured once when the device
// is created (src/gpu/context.rs).
//
// Entry points:
//   loop_limit  out[0] = how many iterations of a loop of p.n ran. Some drivers stop a shader's
//               loops after a fixed total per invocation, shared by every loop of the entry
//               point (Mesa's llvmpipe / lavapipe: 65,535), and go on silently: the kernels
//               whose loops could run longer split their work by that count.
// Bindings: 0 params, 1 out. Workgroup (1,1,1).

struct Params {
    n: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(1)
fn loop_limit() {
    var count = 0u;
    for (var i = 0u; i < p.n; i++) {
        count += 1u;
    }
    out[0] = f32(count);
}
