//! `SyncService` as served: `StreamChanges` answered from the change log's stored encodings
//! (no decode and re-encode of every change, see `changelog::encoded`), every other method by
//! the generated server. The response bytes are those of `StreamChangesResponse`.

use std::convert::Infallible;
use std::task::{Context, Poll};

use syncline_proto::sync::v1::StreamChangesRequest;
use syncline_proto::sync::v1::sync_service_server::SyncServiceServer;
use tonic::codegen::{Body, BoxFuture, Bytes, Service, StdError, http};
use tonic::server::{Grpc, NamedService, ServerStreamingService};
use tonic::{Request, Response, Status};

use crate::api::SyncApi;
use crate::changelog::encoded::EncodedChanges;
use crate::changelog::stream::ChangeStream;

/// The path of the method served here.
const STREAM_CHANGES: &str = "/syncline.sync.v1.SyncService/StreamChanges";

/// `syncline.sync.v1.SyncService` with `StreamChanges` served from stored bytes.
#[derive(Debug, Clone)]
pub struct SyncRoutes {
    api: SyncApi,
    generated: SyncServiceServer<SyncApi>,
}

impl SyncRoutes {
    pub fn new(api: SyncApi) -> Self {
        Self {
            generated: SyncServiceServer::new(api.clone()),
            api,
        }
    }
}

impl NamedService for SyncRoutes {
    const NAME: &'static str = <SyncServiceServer<SyncApi> as NamedService>::NAME;
}

impl<B> Service<http::Request<B>> for SyncRoutes
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != STREAM_CHANGES {
            return self.generated.call(request);
        }
        let method = StreamChanges(self.api.clone());
        Box::pin(async move {
            let codec = tonic_prost::ProstCodec::<EncodedChanges, StreamChangesRequest>::default();
            Ok(Grpc::new(codec).server_streaming(method, request).await)
        })
    }
}

/// The `StreamChanges` handler of [`SyncRoutes`].
struct StreamChanges(SyncApi);

impl ServerStreamingService<StreamChangesRequest> for StreamChanges {
    type Response = EncodedChanges;
    type ResponseStream = ChangeStream;
    type Future = BoxFuture<Response<ChangeStream>, Status>;

    fn call(&mut self, request: Request<StreamChangesRequest>) -> Self::Future {
        let api = self.0.clone();
        Box::pin(async move { api.open_change_stream(request).await.map(Response::new) })
    }
}
