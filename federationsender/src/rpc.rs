//! The questions federationsender answers, one handler per RPC method.

use std::future::Future;

use common::{
    Runtime,
    api::federationsender::*,
    bus::{RemoteError, RemoteErrorKind, Rpc, serve},
};

use crate::{
    client::{FederationClient, SendError},
    keys::KeyRing,
};

/// What the handlers work with.
#[derive(Clone)]
pub struct Handlers {
    pub client: FederationClient,
    pub keys: KeyRing,
    /// The largest message the bus carries, which an answer must fit.
    pub max_payload: usize,
}

fn serve_with<R, H, F>(rt: &Runtime, handlers: &Handlers, handler: H)
where
    R: Rpc + 'static,
    H: Fn(Handlers, R::Request) -> F + Send + Sync + Clone + 'static,
    F: Future<Output = Result<R::Response, RemoteError>> + Send + 'static,
{
    let (bus, shutdown, handlers) = (rt.bus.clone(), rt.shutdown.clone(), handlers.clone());
    rt.spawn(
        R::METHOD,
        serve::<R, _, _>(bus, shutdown, move |request| {
            let (handlers, handler) = (handlers.clone(), handler.clone());
            async move { handler(handlers, request).await }
        }),
    );
}

pub fn start(rt: &Runtime, handlers: &Handlers) {
    serve_with::<SendFederationRequest, _, _>(rt, handlers, send_federation_request);
    serve_with::<QueryServerKeys, _, _>(rt, handlers, query_server_keys);
    serve_with::<QueryNotaryKeys, _, _>(rt, handlers, query_notary_keys);
}

async fn send_federation_request(h: Handlers, request: FederationRequest) -> Result<FederationResponse, RemoteError> {
    let response = h.client.send(&request).await.map_err(|e| match e {
        SendError::Invalid(message) => RemoteError::new(RemoteErrorKind::BadRequest, message),
        SendError::Unreachable(message) => RemoteError::new(RemoteErrorKind::Unreachable, message),
    })?;
    // JSON escaping can make the body grow on its way back; what would not
    // fit the bus is refused here rather than lost there.
    let encoded = serde_json::to_string(&response.body).map_err(anyhow::Error::from)?.len();
    if encoded + 64 > h.max_payload {
        return Err(RemoteError::new(
            RemoteErrorKind::Unreachable,
            format!(
                "{}: the answer ({encoded} bytes encoded) is larger than a bus message can carry",
                request.destination
            ),
        ));
    }
    Ok(response)
}

async fn query_server_keys(
    h: Handlers,
    request: QueryServerKeysRequest,
) -> Result<QueryServerKeysResponse, RemoteError> {
    let keys = h.keys.server_keys(&request.server_name, &request.key_ids, request.valid_at_ts).await?;
    Ok(QueryServerKeysResponse { keys })
}

async fn query_notary_keys(
    h: Handlers,
    request: QueryNotaryKeysRequest,
) -> Result<QueryNotaryKeysResponse, RemoteError> {
    Ok(QueryNotaryKeysResponse { server_keys: h.keys.notary_keys(&request).await? })
}
