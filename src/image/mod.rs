//! Images: reference parsing, the content store, layer unpacking.

pub mod reference;
pub mod store;
pub mod unpack;
