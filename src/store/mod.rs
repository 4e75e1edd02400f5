//! Sandbox (and later container) records: where they live on disk, atomic versioned
//! checkpoints, the state machine, and the in-memory index the RPCs read.

pub mod checkpoint;
pub mod container;
pub mod layout;
pub mod sandbox;
pub mod sandbox_index;
