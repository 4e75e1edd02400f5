//! `runtime.v1.ImageService`: not built yet (the image issue); every RPC says so.

use cri_proto::image_service_server::ImageService;
use cri_proto::*;
use tonic::{Request, Response, Status};

use crate::error::Error;

/// The ImageService implementation.
pub struct ImageApi;

type RpcResult<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl ImageService for ImageApi {
    async fn list_images(
        &self,
        _request: Request<ListImagesRequest>,
    ) -> RpcResult<ListImagesResponse> {
        Err(Error::unimplemented("ListImages").into())
    }

    async fn image_status(
        &self,
        _request: Request<ImageStatusRequest>,
    ) -> RpcResult<ImageStatusResponse> {
        Err(Error::unimplemented("ImageStatus").into())
    }

    async fn pull_image(
        &self,
        _request: Request<PullImageRequest>,
    ) -> RpcResult<PullImageResponse> {
        Err(Error::unimplemented("PullImage").into())
    }

    async fn remove_image(
        &self,
        _request: Request<RemoveImageRequest>,
    ) -> RpcResult<RemoveImageResponse> {
        Err(Error::unimplemented("RemoveImage").into())
    }

    async fn image_fs_info(
        &self,
        _request: Request<ImageFsInfoRequest>,
    ) -> RpcResult<ImageFsInfoResponse> {
        Err(Error::unimplemented("ImageFsInfo").into())
    }
}
