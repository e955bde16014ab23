//! Job model (being written).
