//! Shared helpers of the taskflow examples (none yet); the examples live in `examples/`.
