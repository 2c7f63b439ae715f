//! End-to-end test helpers shared by the tests in this crate.
