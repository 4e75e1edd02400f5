//! Sandbox (and later container) records: where they live on disk, atomic versioned
//! checkpoints, the state machine, and the in-memory index the RPCs read.

pub mod checkpoint;
pub mod container;
pub mod file_pool;
pub mod layout;
pub mod sandbox;
pub mod sandbox_index;

/// A new sandbox or container id: 64 random hex digits, as containerd makes them.
pub fn new_id() -> crate::error::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| crate::error::Error::Internal(format!("random id: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
