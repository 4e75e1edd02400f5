//! The gRPC layer: tonic services that unwrap a request, call the domain code and map the
//! error. One file per RPC group; `serve` owns the socket and graceful shutdown.

mod container;
mod events;
mod image_service;
mod runtime_info;
mod runtime_service;
mod sandbox;
mod streaming;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cri_proto::image_service_server::ImageServiceServer;
use cri_proto::runtime_service_server::RuntimeServiceServer;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tracing::Instrument;

use crate::daemon::Daemon;
use crate::error::{Error, IoContext, Result};

pub use image_service::ImageApi;
pub use runtime_service::RuntimeApi;

/// Runs `work` as a task of its own inside the current span: a client that goes away (a
/// deadline, a reset) does not cut an operation in half, such as a container its monitor
/// created that was never recorded.
async fn detached<T, F>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T>> + Send + 'static,
{
    tokio::spawn(work.in_current_span())
        .await
        .map_err(|e| Error::Internal(format!("request task failed: {e}")))?
}

/// Runs `f` on a blocking thread inside the current span (synchronous domain code).
async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(|e| Error::Internal(format!("request task failed: {e}")))?
}

/// Binds the CRI socket: creates its directory, replaces a stale socket file, refuses to take
/// over a socket another process still serves, and sets mode 0660.
pub async fn bind(socket: &Path) -> Result<UnixListener> {
    let dir = socket.parent().ok_or_else(|| {
        Error::InvalidArgument(format!("socket path {} has no directory", socket.display()))
    })?;
    std::fs::create_dir_all(dir).with_path("create the socket directory", dir)?;
    if socket.exists() {
        if tokio::net::UnixStream::connect(socket).await.is_ok() {
            return Err(Error::FailedPrecondition(format!(
                "another process is serving {}; stop it or pick another --socket",
                socket.display()
            )));
        }
        std::fs::remove_file(socket).with_path("remove stale socket", socket)?;
    }
    let listener = UnixListener::bind(socket).with_path("bind", socket)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660))
        .with_path("chmod 0660", socket)?;
    Ok(listener)
}

/// How long in-flight calls may take after a shutdown signal before the daemon exits anyway
/// (an idle client that never closes its connection must not keep it alive).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves both CRI services on `listener` until `shutdown` resolves, then lets in-flight calls
/// finish (for up to [`DRAIN_TIMEOUT`]). Pods keep running.
pub async fn serve(
    daemon: Arc<Daemon>,
    listener: UnixListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let signalled = Arc::new(tokio::sync::Notify::new());
    let on_signal = signalled.clone();
    let server = tonic::transport::Server::builder()
        .add_service(RuntimeServiceServer::new(RuntimeApi::new(daemon.clone())))
        .add_service(ImageServiceServer::new(ImageApi::new(
            daemon.images.clone(),
        )))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
            shutdown.await;
            on_signal.notify_one();
        });
    tokio::select! {
        served = server => served.map_err(|e| Error::Internal(format!("gRPC server: {e}"))),
        () = async {
            signalled.notified().await;
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        } => {
            tracing::warn!("in-flight calls or open connections still there after {DRAIN_TIMEOUT:?}; exiting");
            Ok(())
        }
    }
}
