//! Serving ruma's endpoint types through axum: one extractor parses the
//! request exactly as the spec's types say, one wrapper renders the response,
//! and [`RumaRouter::ruma`] mounts a handler on every path ruma lists for the
//! endpoint (r0, v3, unstable).

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::{
    Router,
    extract::{ConnectInfo, FromRequest, FromRequestParts, RawPathParams, Request},
    handler::Handler,
    response::{IntoResponse, Response},
    routing::{MethodFilter, on},
};
use http_body_util::{BodyExt, Limited};
use ruma::api::{
    IncomingRequest, IncomingRequestExt, OutgoingResponse, OutgoingResponseExt,
    auth_scheme::extract_bearer_or_query_token, error::DeserializationError, error::FromHttpRequestError,
    path_builder::PathBuilder,
};

use crate::api::userapi::TokenOwner;

use super::{HttpContext, MatrixError};

/// A parsed request of endpoint `T`, with who sent it where the endpoint
/// takes an access token.
pub struct Ruma<T> {
    pub body: T,
    /// The owner of the access token, for endpoints that take one.
    pub user: Option<TokenOwner>,
    pub client_ip: Option<IpAddr>,
    /// The body as sent, for what must be kept exactly as the client wrote it.
    pub raw_body: bytes::Bytes,
}

impl<T> Ruma<T> {
    /// The caller, for endpoints whose access token ruma calls optional but
    /// that still need one here.
    pub fn require_user(&self) -> Result<&TokenOwner, MatrixError> {
        self.user.as_ref().ok_or_else(MatrixError::missing_token)
    }
}

/// Marks a route that guest accounts may use; every other route answers
/// guests 403 M_GUEST_ACCESS_FORBIDDEN.
#[derive(Clone, Copy)]
pub struct GuestAllowed;

/// How an endpoint's authentication scheme treats an access token.
pub trait TokenUse {
    const REQUIRED: bool;
    const CHECKED: bool;
}

macro_rules! token_use {
    ($($scheme:ty => $checked:expr, $required:expr;)*) => {
        $(impl TokenUse for $scheme {
            const CHECKED: bool = $checked;
            const REQUIRED: bool = $required;
        })*
    };
}

token_use! {
    ruma::api::auth_scheme::NoAuthentication => false, false;
    ruma::api::auth_scheme::NoAccessToken => false, false;
    ruma::api::auth_scheme::AccessToken => true, true;
    ruma::api::auth_scheme::AccessTokenOptional => true, false;
    // Application services come later; until then their tokens are access tokens.
    ruma::api::auth_scheme::AppserviceToken => true, true;
    ruma::api::auth_scheme::AppserviceTokenOptional => false, false;
    ruma::api::federation::authentication::ServerSignatures => false, false;
}

impl<T, S> FromRequest<S> for Ruma<T>
where
    T: IncomingRequest + Send,
    T::Authentication: TokenUse,
    S: Send + Sync,
{
    type Rejection = MatrixError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let ctx = parts
            .extensions
            .get::<Arc<HttpContext>>()
            .cloned()
            .ok_or_else(|| MatrixError::internal("HttpContext layer missing"))?;
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        let client_ip = super::client_address(peer, &parts.headers);
        if T::RATE_LIMITED {
            ctx.check_rate(client_ip)?;
        }
        let user = if <T::Authentication as TokenUse>::CHECKED {
            // Only the URI and headers carry a token.
            let mut carrier = http::Request::new(());
            *carrier.uri_mut() = parts.uri.clone();
            *carrier.headers_mut() = parts.headers.clone();
            let token = extract_bearer_or_query_token(&carrier)
                .map_err(|_| MatrixError::unknown_token(false, "Malformed Authorization header"))?;
            match token {
                Some(token) => Some(ctx.tokens.owner(&token, client_ip).await?),
                None if <T::Authentication as TokenUse>::REQUIRED => return Err(MatrixError::missing_token()),
                None => None,
            }
        } else {
            None
        };
        if user.as_ref().is_some_and(|u| u.is_guest) && parts.extensions.get::<GuestAllowed>().is_none() {
            return Err(MatrixError::guest_access_forbidden());
        }
        let path_args: Vec<String> = RawPathParams::from_request_parts(&mut parts, state)
            .await
            .map(|params| params.iter().map(|(_, value)| value.to_owned()).collect())
            .map_err(|e| MatrixError::invalid_param(format!("Invalid path parameter: {e}")))?;
        let bytes = read_body(body, ctx.max_body).await?;
        let path_args: Vec<&str> = path_args.iter().map(String::as_str).collect();
        let request = http::Request::from_parts(parts.clone(), bytes.as_ref());
        let parsed = match T::try_from_http_request(request, &path_args) {
            // No body where every field is optional, as matrix-nio's join
            // sends and other servers accept: the same as `{}`.
            Err(FromHttpRequestError::Deserialization(_)) if bytes.is_empty() => {
                let empty_object = http::Request::from_parts(parts, b"{}".as_slice());
                T::try_from_http_request(empty_object, &path_args)
            }
            parsed => parsed,
        };
        match parsed {
            Ok(body) => Ok(Ruma { body, user, client_ip, raw_body: bytes.clone() }),
            Err(FromHttpRequestError::MethodMismatch { .. }) => Err(MatrixError::method_not_allowed()),
            Err(FromHttpRequestError::Deserialization(DeserializationError::Json(e))) => {
                if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_err() {
                    Err(MatrixError::not_json("Request body is not valid JSON"))
                } else {
                    Err(MatrixError::bad_json(format!("Malformed request body: {e}")))
                }
            }
            Err(e) => Err(MatrixError::invalid_param(format!("Invalid request: {e}"))),
        }
    }
}

/// Reads a body of at most `limit` bytes; a larger one is 413 M_TOO_LARGE.
pub async fn read_body(body: axum::body::Body, limit: usize) -> Result<bytes::Bytes, MatrixError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(MatrixError::too_large(limit)),
        Err(e) => Err(MatrixError::bad_json(format!("Cannot read the request body: {e}"))),
    }
}

/// A response of endpoint `T`'s type.
pub struct RumaResponse<T>(pub T);

impl<T: OutgoingResponse> IntoResponse for RumaResponse<T> {
    fn into_response(self) -> Response {
        match self.0.try_into_http_response::<bytes::BytesMut>() {
            Ok(response) => response.map(|body| axum::body::Body::from(body.freeze())),
            Err(e) => MatrixError::internal(format!("cannot serialise response: {e}")).into_response(),
        }
    }
}

pub trait RumaRouter<S> {
    /// Serves endpoint `T` with `handler` on every path ruma knows for it.
    fn ruma<T, H, X>(self, handler: H) -> Self
    where
        T: IncomingRequest,
        H: Handler<X, S>,
        X: 'static;

    /// Like [`RumaRouter::ruma`], for an endpoint guest accounts may use.
    fn ruma_guest<T, H, X>(self, handler: H) -> Self
    where
        T: IncomingRequest,
        H: Handler<X, S>,
        X: 'static;
}

impl<S: Clone + Send + Sync + 'static> RumaRouter<S> for Router<S> {
    fn ruma<T, H, X>(self, handler: H) -> Self
    where
        T: IncomingRequest,
        H: Handler<X, S>,
        X: 'static,
    {
        mount::<T, _, _, _>(self, handler, false)
    }

    fn ruma_guest<T, H, X>(self, handler: H) -> Self
    where
        T: IncomingRequest,
        H: Handler<X, S>,
        X: 'static,
    {
        mount::<T, _, _, _>(self, handler, true)
    }
}

fn mount<T, H, X, S>(mut router: Router<S>, handler: H, guests: bool) -> Router<S>
where
    T: IncomingRequest,
    H: Handler<X, S>,
    X: 'static,
    S: Clone + Send + Sync + 'static,
{
    let filter = MethodFilter::try_from(T::METHOD).expect("ruma endpoints use standard methods");
    for path in T::PATH_BUILDER.all_paths() {
        let route = on(filter, handler.clone());
        router = router.route(path, if guests { route.layer(axum::Extension(GuestAllowed)) } else { route });
    }
    router
}
