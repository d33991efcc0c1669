//! The WGSL sources, embedded at compile time. Every kernel file is compiled with the common
//! prelude (`shaders/common.wgsl`) in front of it: WGSL has no includes, and the prelude holds
//! the index helpers every kernel shares.

/// The prelude prepended to every kernel file.
pub const PRELUDE: &str = include_str!("../../shaders/common.wgsl");

/// `(name, source)` of every kernel family in `shaders/`.
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
];

/// The source of kernel family `name` with the prelude in front, and the number of prelude
/// lines (to map validation errors back to the file's own line numbers).
pub fn source_with_prelude(name: &str) -> Option<(String, usize)> {
    SOURCES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, src)| (format!("{PRELUDE}\n{src}"), PRELUDE.lines().count() + 1))
}
