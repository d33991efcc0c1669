//! Built-in environments (plain Rust, no GPU types).
