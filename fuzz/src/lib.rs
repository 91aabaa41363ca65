//! The fuzz targets' checks: the same source file the stable replay test
//! uses (`bulkhead_tests::fuzz_checks`), compiled here by path so the fuzz
//! build does not pull in the whole test crate.

#[path = "../../tests/src/fuzz_checks/mod.rs"]
pub mod checks;
