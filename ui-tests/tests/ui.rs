//! trybuild cases of the taskflow macros: `pass/` compile and run (end to end on the memory backend), `fail/` must not
//! compile, with the blessed diagnostics in `fail/*.stderr`.
//!
//! Re-bless after a deliberate change: `TRYBUILD=overwrite cargo test -p ui-tests`, then review the `.stderr` diff.

#[rustversion::attr(
    not(stable(1.95)),
    ignore = "stderr blessed with rustc 1.95; re-bless with TRYBUILD=overwrite"
)]
#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/pass/*.rs");
    cases.compile_fail("tests/fail/*.rs");
}
