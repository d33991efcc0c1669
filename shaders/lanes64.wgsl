// lanes64.wgsl: eight floats as one vec4<u64> and back (wgpu::Features::SHADER_INT64), for the
// subgroup matmul's 8-float loads and stores (matmul_lanes64.wgsl, composed after this file).
//
// Why: lavapipe loads a storage value in an 8-step loop over the lanes with a bounds check per
// component, so a load costs about its loop: a vec4<u64> costs ~1.1x a vec4<f32> for twice the
// floats. Helpers only: no bindings, no entry points.

// The first and the last four floats of eight (little-endian: float 2j is the low half of
// u64 j, float 2j + 1 its high half).
fn lo4(v: vec4<u64>) -> vec4<f32> {
    let h = v.xy >> vec2<u32>(32u);
    return bitcast<vec4<f32>>(vec4<u32>(u32(v.x), u32(h.x), u32(v.y), u32(h.y)));
}

fn hi4(v: vec4<u64>) -> vec4<f32> {
    let h = v.zw >> vec2<u32>(32u);
    return bitcast<vec4<f32>>(vec4<u32>(u32(v.z), u32(h.x), u32(v.w), u32(h.y)));
}

// Eight floats as a vec4<u64>: the inverse of lo4 / hi4.
fn pack8(a: vec4<f32>, b: vec4<f32>) -> vec4<u64> {
    let lo = vec4<u64>(bitcast<vec4<u32>>(vec4<f32>(a.x, a.z, b.x, b.z)));
    let hi = vec4<u64>(bitcast<vec4<u32>>(vec4<f32>(a.y, a.w, b.y, b.w)));
    return lo | (hi << vec4<u32>(32u));
}
