//! Every file in `ui/` must fail to compile with exactly the reviewed
//! messages in its `.stderr`. Regenerate with `TRYBUILD=overwrite`, then
//! read every changed `.stderr` before committing.

#[test]
fn ui() {
    trybuild::TestCases::new().compile_fail("ui/*.rs");
}
