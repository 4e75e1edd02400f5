//! The one error type of crishim and its single mapping to gRPC status codes.

use std::path::Path;

/// Every failure a CRI call can end in. Variants mirror the gRPC codes kubelet acts on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request names something that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request would create something that already exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request itself is malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// The request is valid but the object is in the wrong state for it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The RPC or feature is not built yet.
    #[error("{0}")]
    Unimplemented(String),
    /// A remote service (a registry) cannot be reached.
    #[error("{0}")]
    Unavailable(String),
    /// Credentials were missing or refused.
    #[error("{0}")]
    Unauthenticated(String),
    /// Content does not match its digest.
    #[error("{0}")]
    Corrupt(String),
    /// Something did not answer in time.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// An operating-system call failed; `context` says what was being done, to which path or pod.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path or id involved.
        context: String,
        /// The underlying OS error.
        #[source]
        source: std::io::Error,
    },
    /// A bug or an inconsistency that the caller cannot fix.
    #[error("{0}")]
    Internal(String),
}

/// Shorthand for results in crishim.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An OS error with the context of what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// An OS error on a path: "`action` `path`: error".
    pub fn io_path(action: &str, path: &Path, source: std::io::Error) -> Self {
        Error::io(format!("{action} {}", path.display()), source)
    }

    /// An RPC that is not built yet; the message names it.
    pub fn unimplemented(rpc: &str) -> Self {
        Error::Unimplemented(format!("{rpc} is not implemented by crishim yet"))
    }
}

/// Adds path context to `std::io::Result`s.
pub trait IoContext<T> {
    /// Maps the error to [`Error::Io`] saying "`action` `path`".
    fn with_path(self, action: &str, path: &Path) -> Result<T>;
    /// Maps the error to [`Error::Io`] with a free-form context.
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn with_path(self, action: &str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io_path(action, path, e))
    }

    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e))
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e {
            Error::NotFound(_) => tonic::Status::not_found(message),
            Error::AlreadyExists(_) => tonic::Status::already_exists(message),
            Error::InvalidArgument(_) => tonic::Status::invalid_argument(message),
            Error::FailedPrecondition(_) => tonic::Status::failed_precondition(message),
            Error::Unimplemented(_) => tonic::Status::unimplemented(message),
            Error::DeadlineExceeded(_) => tonic::Status::deadline_exceeded(message),
            Error::Unavailable(_) => tonic::Status::unavailable(message),
            Error::Unauthenticated(_) => tonic::Status::unauthenticated(message),
            Error::Corrupt(_) => tonic::Status::data_loss(message),
            Error::Io { .. } | Error::Internal(_) => tonic::Status::internal(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn each_variant_maps_to_its_grpc_code() {
        let cases = [
            (Error::NotFound("x".into()), Code::NotFound),
            (Error::AlreadyExists("x".into()), Code::AlreadyExists),
            (Error::InvalidArgument("x".into()), Code::InvalidArgument),
            (
                Error::FailedPrecondition("x".into()),
                Code::FailedPrecondition,
            ),
            (Error::unimplemented("Attach"), Code::Unimplemented),
            (Error::DeadlineExceeded("x".into()), Code::DeadlineExceeded),
            (Error::Unavailable("x".into()), Code::Unavailable),
            (Error::Unauthenticated("x".into()), Code::Unauthenticated),
            (Error::Corrupt("x".into()), Code::DataLoss),
            (Error::Internal("x".into()), Code::Internal),
            (
                Error::io("mount /a", std::io::Error::from_raw_os_error(libc::EPERM)),
                Code::Internal,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(tonic::Status::from(error).code(), code);
        }
    }

    #[test]
    fn messages_keep_context() {
        let status = tonic::Status::from(Error::io_path(
            "create",
            Path::new("/run/x"),
            std::io::Error::from_raw_os_error(libc::EACCES),
        ));
        assert!(
            status.message().starts_with("create /run/x: "),
            "{}",
            status.message()
        );
        let status = tonic::Status::from(Error::unimplemented("Attach"));
        assert_eq!(status.message(), "Attach is not implemented by crishim yet");
    }
}
