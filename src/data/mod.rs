//! Replay buffer and episode / checkpoint file formats (plain Rust, no GPU types).
