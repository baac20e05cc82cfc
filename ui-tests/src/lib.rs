//! Compile tests of the taskflow macros live in `tests/`.
