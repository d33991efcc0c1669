//! The WGSL sources, embedded at compile time. Every kernel file is compiled with the common
//! prelude (`shaders/common.wgsl`) in front of it: WGSL has no includes, and the prelude holds
//! the index helpers every kernel shares.

/// The prelude prepended to every kernel file.
pub const PRELUDE: &str = include_str!("../../shaders/common.wgsl");

/// `(name, source)` of every file in `shaders/` but the prelude. Each is a kernel family of its
/// own unless [`COMPOSED`] names it.
pub const SOURCES: &[(&str, &str)] = &[
    (
        "elementwise",
        include_str!("../../shaders/elementwise.wgsl"),
    ),
    ("matmul", include_str!("../../shaders/matmul.wgsl")),
    ("reduce", include_str!("../../shaders/reduce.wgsl")),
    ("shape", include_str!("../../shaders/shape.wgsl")),
    ("gru", include_str!("../../shaders/gru.wgsl")),
    ("gaussian", include_str!("../../shaders/gaussian.wgsl")),
    ("kl", include_str!("../../shaders/kl.wgsl")),
    ("conv", include_str!("../../shaders/conv.wgsl")),
    ("loss", include_str!("../../shaders/loss.wgsl")),
    ("adam", include_str!("../../shaders/adam.wgsl")),
    ("returns", include_str!("../../shaders/returns.wgsl")),
    ("rssm", include_str!("../../shaders/rssm.wgsl")),
    (
        "matmul_lanes",
        include_str!("../../shaders/matmul_lanes.wgsl"),
    ),
    ("conv_wgrad", include_str!("../../shaders/conv_wgrad.wgsl")),
    (
        "conv_wgrad_lanes",
        include_str!("../../shaders/conv_wgrad_lanes.wgsl"),
    ),
    (
        "conv_main_lanes",
        include_str!("../../shaders/conv_main_lanes.wgsl"),
    ),
    ("probe", include_str!("../../shaders/probe.wgsl")),
];

/// Kernel families compiled from more than one file (in this order, after the prelude). A
/// variant that needs a device feature (subgroup operations) shares the body of its kernel and
/// differs in a small file of its own, so the plain family never needs the feature.
pub const COMPOSED: &[(&str, &[&str])] = &[
    ("conv", &["conv", "conv_wgrad"]),
    (
        "conv_lanes",
        &["conv", "conv_wgrad_lanes", "conv_main_lanes"],
    ),
];

/// Every kernel family: the composed ones and each file no composed family uses.
pub fn families() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = COMPOSED.iter().map(|(n, _)| *n).collect();
    for (name, _) in SOURCES {
        if !COMPOSED.iter().any(|(_, files)| files.contains(name)) {
            out.push(name);
        }
    }
    out
}

/// The `(file, source)` parts of kernel family `family`, in order.
pub fn family_files(family: &str) -> Option<Vec<(&'static str, &'static str)>> {
    let file = |name: &str| SOURCES.iter().find(|(n, _)| *n == name).copied();
    match COMPOSED.iter().find(|(n, _)| *n == family) {
        Some((_, files)) => files.iter().map(|f| file(f)).collect(),
        None => file(family).map(|f| vec![f]),
    }
}

/// The prelude and `parts` joined into one source, and for each part the number of lines
/// before its first line (to map a line of the whole back to its file).
pub fn compose(parts: &[(&str, &str)]) -> (String, Vec<usize>) {
    let mut source = String::from(PRELUDE);
    let mut offsets = Vec::new();
    for (_, text) in parts {
        source.push('\n');
        offsets.push(source.matches('\n').count());
        source.push_str(text);
    }
    (source, offsets)
}
