//! Integration tests of strata-table on real Delta tables in temp folders.

mod ops;
