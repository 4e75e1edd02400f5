//! The Kubernetes CRI `runtime.v1` API for crishim: messages, tonic server traits and clients.
//!
//! This crate is the one place CRI types come from. It re-exports the generated bindings of the
//! `k8s-cri` crate and adds [`connect`], a client channel over a unix socket, shared by the
//! end-to-end tests and the load generator.

pub use k8s_cri::v1::*;

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// Turns a CRI endpoint as kubelet writes it (`unix:///run/x.sock`, or a bare path) into a path.
pub fn socket_path(endpoint: &str) -> PathBuf {
    Path::new(endpoint.strip_prefix("unix://").unwrap_or(endpoint)).to_path_buf()
}

/// Opens a gRPC channel to a CRI endpoint on a unix socket (`unix:///path` or `/path`).
pub async fn connect(endpoint: &str) -> Result<Channel, tonic::transport::Error> {
    let path = socket_path(endpoint);
    // The URI is required by tonic but unused: every connection goes to the socket.
    Endpoint::from_static("http://[::1]:0")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
}
