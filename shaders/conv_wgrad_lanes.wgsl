// conv_wgrad_lanes.wgsl: the subgroup half of conv.wgsl's weight-gradient pass, compiled after
// it as the `conv_lanes` family (gpu::shaders::COMPOSED) on devices with 8-lane subgroups (CPU
// drivers: lavapipe loads storage values lane by lane, see matmul_lanes.wgsl).
//
// Entry point `wgrad`: workgroup (64,1,1) = 8 subgroups of 8 lanes; subgroup g's lanes take
// the 8 consecutive tiles 8g..8g+7, which share their 16 small-image channels (conv.wgsl pads
// each row block's column tiles to a multiple of 8). `small16`: each lane loads 2 of the 16
// values and the subgroup broadcasts them: 2 loads per step instead of 16.

const LANES: bool = true;

@compute @workgroup_size(64)
fn wgrad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
    wgrad_body(wid, nwg, wid.x * 64u + sg * 8u + lane, lane);
}

fn small16(zs: u32, ao: ptr<function, array<u32, 16>>, lane_a0: u32, lane_a1: u32) -> mat4x4<f32> {
    let v = vec2<f32>(inp[zs + lane_a0], inp[zs + lane_a1]);
    return mat4x4<f32>(
        vec4<f32>(subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u)),
        vec4<f32>(subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u)),
        vec4<f32>(subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u)),
        vec4<f32>(subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u)));
}
