//! Builder (being written).
