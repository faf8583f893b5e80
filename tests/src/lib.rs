//! The integration suite lives in tests/tests/; this crate has no library code.
