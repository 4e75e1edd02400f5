//! GetContainerEvents: the daemon's container and pod events as a stream.

use cri_proto::ContainerEventResponse;
use tokio::sync::broadcast::error::RecvError;
use tonic::Status;

use super::RuntimeApi;
use crate::error::Error;

/// What GetContainerEvents answers.
pub(super) type EventStream = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<ContainerEventResponse, Status>> + Send>,
>;

impl RuntimeApi {
    /// Every event from now on, until the client goes. A client that falls too far behind
    /// gets Unavailable and the stream ends: events it missed are gone, so it must relist
    /// (kubelet does).
    #[tracing::instrument(name = "GetContainerEvents", skip_all)]
    pub(super) fn container_events_rpc(&self) -> EventStream {
        let receiver = self.daemon.containers.subscribe_events();
        Box::pin(futures_util::stream::unfold(
            Some(receiver),
            |receiver| async move {
                let mut receiver = receiver?;
                match receiver.recv().await {
                    Ok(event) => Some((Ok((*event).clone()), Some(receiver))),
                    Err(RecvError::Lagged(missed)) => {
                        let lagged = Error::Unavailable(format!(
                            "the client fell {missed} events behind; they are dropped: list again and resubscribe"
                        ));
                        Some((Err(lagged.into()), None))
                    }
                    Err(RecvError::Closed) => None,
                }
            },
        ))
    }
}
