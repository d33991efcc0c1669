// conv_wgrad.wgsl: the plain half of conv.wgsl's weight-gradient pass, compiled after it as the
// `conv` family (gpu::shaders::COMPOSED). conv_wgrad_lanes.wgsl is the subgroup half.
//
// Entry point `wgrad`: see conv.wgsl's header (workgroup (64,1,1), one tile per invocation).
// `small16`: the 16 small-image values of a step, each invocation loading all 16 itself.

const LANES: bool = false;

@compute @workgroup_size(64)
fn wgrad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
    wgrad_body(wid, nwg, wid.x * 64u + lid.x, 0u);
}

// Columns of the result: channels a0..a0+3, +4..+7, +8..+11, +12..+15 at offset zs.
fn small16(zs: u32, ao: ptr<function, array<u32, 16>>, lane_a0: u32, lane_a1: u32) -> mat4x4<f32> {
    return mat4x4<f32>(
        vec4<f32>(inp[zs + (*ao)[0]], inp[zs + (*ao)[1]], inp[zs + (*ao)[2]], inp[zs + (*ao)[3]]),
        vec4<f32>(inp[zs + (*ao)[4]], inp[zs + (*ao)[5]], inp[zs + (*ao)[6]], inp[zs + (*ao)[7]]),
        vec4<f32>(inp[zs + (*ao)[8]], inp[zs + (*ao)[9]], inp[zs + (*ao)[10]], inp[zs + (*ao)[11]]),
        vec4<f32>(inp[zs + (*ao)[12]], inp[zs + (*ao)[13]], inp[zs + (*ao)[14]], inp[zs + (*ao)[15]]));
}
