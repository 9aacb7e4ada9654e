//! Log record format.
