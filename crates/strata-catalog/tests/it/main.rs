//! Integration tests of strata-catalog, one binary (see CONVENTIONS.md).

mod metastore;
