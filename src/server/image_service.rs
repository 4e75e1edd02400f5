//! `runtime.v1.ImageService`: PullImage, ImageStatus, ListImages, RemoveImage, ImageFsInfo.

use std::sync::Arc;

use cri_proto::image_service_server::ImageService;
use cri_proto::*;
use tonic::{Request, Response, Status};

use super::blocking;
use crate::image::service::Images;

/// The ImageService implementation.
pub struct ImageApi {
    images: Arc<Images>,
}

impl ImageApi {
    /// A service over the daemon's images.
    pub fn new(images: Arc<Images>) -> Self {
        ImageApi { images }
    }
}

type RpcResult<T> = Result<Response<T>, Status>;

fn image_of(spec: Option<&ImageSpec>) -> &str {
    spec.map(|s| s.image.as_str()).unwrap_or_default()
}

#[tonic::async_trait]
impl ImageService for ImageApi {
    #[tracing::instrument(name = "ListImages", skip_all)]
    async fn list_images(
        &self,
        request: Request<ListImagesRequest>,
    ) -> RpcResult<ListImagesResponse> {
        // The store's index lock can be held across an fsync: keep it off the async workers.
        let store = self.images.clone();
        let filter = request.into_inner().filter;
        let images = blocking(move || store.list(filter.as_ref())).await?;
        Ok(Response::new(ListImagesResponse { images }))
    }

    #[tracing::instrument(name = "ImageStatus", skip_all, fields(image = image_of(request.get_ref().image.as_ref())))]
    async fn image_status(
        &self,
        request: Request<ImageStatusRequest>,
    ) -> RpcResult<ImageStatusResponse> {
        let request = request.into_inner();
        let store = self.images.clone();
        let (image, info) =
            blocking(move || store.status(request.image.as_ref(), request.verbose)).await?;
        Ok(Response::new(ImageStatusResponse { image, info }))
    }

    #[tracing::instrument(name = "PullImage", skip_all, fields(image = image_of(request.get_ref().image.as_ref())))]
    async fn pull_image(&self, request: Request<PullImageRequest>) -> RpcResult<PullImageResponse> {
        let request = request.into_inner();
        let image_ref = self
            .images
            .pull(request.image.as_ref(), request.auth.as_ref())
            .await?;
        Ok(Response::new(PullImageResponse { image_ref }))
    }

    #[tracing::instrument(name = "RemoveImage", skip_all, fields(image = image_of(request.get_ref().image.as_ref())))]
    async fn remove_image(
        &self,
        request: Request<RemoveImageRequest>,
    ) -> RpcResult<RemoveImageResponse> {
        let images = self.images.clone();
        let spec = request.into_inner().image;
        blocking(move || images.remove(spec.as_ref())).await?;
        Ok(Response::new(RemoveImageResponse {}))
    }

    #[tracing::instrument(name = "ImageFsInfo", skip_all)]
    async fn image_fs_info(
        &self,
        _request: Request<ImageFsInfoRequest>,
    ) -> RpcResult<ImageFsInfoResponse> {
        let images = self.images.clone();
        Ok(Response::new(blocking(move || Ok(images.fs_info())).await?))
    }
}
