//! Records the git commit and target for `bulkhead --version`.

include!("../packaging/build_commit.rs");

fn main() {
    emit_build_info();
}
