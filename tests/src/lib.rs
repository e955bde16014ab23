//! Shared helpers for weir integration tests.
