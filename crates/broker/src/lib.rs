//! herald-broker: see the crate description.
