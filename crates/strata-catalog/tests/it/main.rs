//! Integration tests of strata-catalog, one binary (see CONVENTIONS.md).

mod metastore;

/// This crate's folder, from the environment `cargo test` runs the tests in: the value compiled
/// in is where the binary was built, which a build cache shared between clones can make another
/// clone's folder.
pub fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
