//! Images: reference parsing, pulling from registries, the content store, layer unpacking,
//! wasm detection, and the domain side of the ImageService RPCs.

pub mod auth;
pub mod platform;
pub mod precompile;
pub mod pull;
pub mod reference;
pub mod rootfs;
pub mod service;
pub mod store;
pub mod token;
pub mod unpack;
pub mod wasm;
