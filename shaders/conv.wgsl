// conv.wgsl: (being written) placeholder so the family is registered.
@compute @workgroup_size(1)
fn placeholder() {}
