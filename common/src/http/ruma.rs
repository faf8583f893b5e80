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
    /// The server that signed the request, for server-server endpoints.
    pub origin: Option<ruma::OwnedServerName>,
    /// The body as sent, for what must be kept exactly as the client wrote it.
    pub raw_body: bytes::Bytes,
}

impl<T> Ruma<T> {
    /// The caller, for endpoints whose access token ruma calls optional but
    /// that still need one here.
    pub fn require_user(&self) -> Result<&TokenOwner, MatrixError> {
        self.user.as_ref().ok_or_else(MatrixError::missing_token)
    }

    /// The server that signed a server-server request (always there: the
    /// extractor refuses an unsigned one).
    pub fn origin(&self) -> Result<&ruma::ServerName, MatrixError> {
        self.origin.as_deref().ok_or_else(|| MatrixError::internal("a federation route without X-Matrix"))
    }
}

/// Marks a route that guest accounts may use; every other route answers
/// guests 403 M_GUEST_ACCESS_FORBIDDEN.
#[derive(Clone, Copy)]
pub struct GuestAllowed;

/// Marks a route that takes an empty body as `{}`.
#[derive(Clone, Copy)]
struct EmptyBodyAllowed;

/// Marks a server-server route whose signed body need not be canonical JSON.
#[derive(Clone, Copy)]
struct NonCanonicalBodyAllowed;

/// What a route fills in for body fields the spec makes optional and ruma's
/// type requires.
#[derive(Clone, Copy)]
struct BodyDefaults(BodyDefaultsFn);

/// Adds the fields a body left out, with their default values.
pub type BodyDefaultsFn = fn(&mut serde_json::Map<String, serde_json::Value>);

/// What a route allows beyond what its ruma type says.
#[derive(Clone, Copy, Default)]
pub struct RouteOptions {
    /// Guest accounts may call it.
    pub guests: bool,
    /// An empty body is taken as `{}`: where the body's fields are all
    /// optional and clients send none (membership changes, as Synapse
    /// allows), or where the spec gives the endpoint no body at all.
    pub empty_body: bool,
    /// A signed body that is not canonical JSON is let through for the
    /// handler to sort out (`/send`, which drops only the PDUs that are not);
    /// anywhere else it is 400 M_BAD_JSON.
    pub non_canonical_body: bool,
    /// Fills in the body's missing fields before ruma reads it, where the
    /// spec gives them defaults and ruma's type does not (checked
    /// signatures stay checked: it runs after them).
    pub body_defaults: Option<BodyDefaultsFn>,
}

impl RouteOptions {
    const NONE: Self = Self { guests: false, empty_body: false, non_canonical_body: false, body_defaults: None };
    pub const GUESTS: Self = Self { guests: true, ..Self::NONE };
    pub const EMPTY_BODY: Self = Self { empty_body: true, ..Self::NONE };
    pub const GUESTS_EMPTY_BODY: Self = Self { guests: true, empty_body: true, ..Self::NONE };
    pub const NON_CANONICAL_BODY: Self = Self { non_canonical_body: true, ..Self::NONE };

    /// A route whose body may leave out fields that `fill` adds.
    pub const fn body_defaults(fill: BodyDefaultsFn) -> Self {
        Self { body_defaults: Some(fill), ..Self::NONE }
    }
}

/// How an endpoint's authentication scheme treats an access token.
pub trait TokenUse {
    const REQUIRED: bool;
    const CHECKED: bool;
    /// The request must carry a server's X-Matrix signature.
    const SERVER: bool = false;
}

macro_rules! token_use {
    ($($scheme:ty => $checked:expr, $required:expr;)*) => {
        $(impl TokenUse for $scheme {
            const CHECKED: bool = $checked;
            const REQUIRED: bool = $required;
        })*
    };
}

impl TokenUse for ruma::api::federation::authentication::ServerSignatures {
    const CHECKED: bool = false;
    const REQUIRED: bool = false;
    const SERVER: bool = true;
}

token_use! {
    ruma::api::auth_scheme::NoAuthentication => false, false;
    ruma::api::auth_scheme::NoAccessToken => false, false;
    ruma::api::auth_scheme::AccessToken => true, true;
    ruma::api::auth_scheme::AccessTokenOptional => true, false;
    // Application services come later; until then their tokens are access tokens.
    ruma::api::auth_scheme::AppserviceToken => true, true;
    ruma::api::auth_scheme::AppserviceTokenOptional => false, false;
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
        let origin = if <T::Authentication as TokenUse>::SERVER {
            let mut signed = http::Request::new(&bytes[..]);
            *signed.method_mut() = parts.method.clone();
            *signed.uri_mut() = parts.uri.clone();
            *signed.headers_mut() = parts.headers.clone();
            let non_canonical_ok = parts.extensions.get::<NonCanonicalBodyAllowed>().is_some();
            Some(ctx.servers.verify(&signed, non_canonical_ok).await?)
        } else {
            None
        };
        let empty_allowed = parts.extensions.get::<EmptyBodyAllowed>().is_some();
        check_body(&parts.method, &bytes, empty_allowed)?;
        // Not every ruma body takes an empty body for `{}` by itself.
        let bytes = if empty_allowed && bytes.is_empty() { bytes::Bytes::from_static(b"{}") } else { bytes };
        let sent = bytes.clone();
        let bytes = match parts.extensions.get::<BodyDefaults>() {
            Some(BodyDefaults(fill)) => with_defaults(bytes, *fill)?,
            None => bytes,
        };
        let path_args: Vec<&str> = path_args.iter().map(String::as_str).collect();
        // A query parameter given with no value (`?filter=`) is taken as
        // absent where the value would not parse, as Synapse takes it.
        let fallback = without_empty_query_values(&parts.uri).map(|uri| {
            let mut fallback = parts.clone();
            fallback.uri = uri;
            fallback
        });
        let parsed = match (parse::<T>(parts, &bytes, &path_args)?, fallback) {
            (Err(_), Some(fallback)) => parse::<T>(fallback, &bytes, &path_args)?,
            (parsed, _) => parsed,
        };
        match parsed {
            Ok(body) => Ok(Ruma { body, user, client_ip, origin, raw_body: sent }),
            Err(FromHttpRequestError::MethodMismatch { .. }) => Err(MatrixError::method_not_allowed()),
            Err(FromHttpRequestError::Deserialization(DeserializationError::Json(e))) => {
                Err(MatrixError::bad_json(format!("Malformed request body: {e}")))
            }
            Err(e) => Err(MatrixError::invalid_param(format!("Invalid request: {e}"))),
        }
    }
}

/// ruma's deserialisers can panic on input they did not expect (its
/// `LoginInfo` indexes a missing "type"); a client's mistake must stay a
/// 400, and the panic is logged so that it gets fixed where it is.
fn parse<T: IncomingRequest>(
    parts: http::request::Parts,
    body: &[u8],
    path_args: &[&str],
) -> Result<Result<T, FromHttpRequestError>, MatrixError> {
    let request = http::Request::from_parts(parts, body);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| T::try_from_http_request(request, path_args))).map_err(
        |_| {
            tracing::error!(endpoint = std::any::type_name::<T>(), "parsing a request panicked");
            MatrixError::bad_json("Malformed request body")
        },
    )
}

/// The body with the fields `fill` adds where it left them out.
fn with_defaults(bytes: bytes::Bytes, fill: BodyDefaultsFn) -> Result<bytes::Bytes, MatrixError> {
    let mut object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|e| MatrixError::bad_json(format!("Malformed request body: {e}")))?;
    fill(&mut object);
    serde_json::to_vec(&object).map(Into::into).map_err(MatrixError::internal)
}

/// The URI without its query parameters that have no value; `None` when it has none.
fn without_empty_query_values(uri: &http::Uri) -> Option<http::Uri> {
    let query = uri.query()?;
    let kept: Vec<&str> =
        query.split('&').filter(|pair| pair.split_once('=').is_some_and(|(_, value)| !value.is_empty())).collect();
    if kept.len() == query.split('&').count() {
        return None;
    }
    let path_and_query =
        if kept.is_empty() { uri.path().to_owned() } else { format!("{}?{}", uri.path(), kept.join("&")) };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    http::Uri::from_parts(parts).ok()
}

/// Every request body of the client-server API is a JSON object, required on
/// POST and PUT: an empty body there is refused rather than read as `{}`
/// (which ruma would do, and a message would be stored with empty content),
/// except on the routes that take it as `{}` ([`RouteOptions::empty_body`]).
/// A GET's body means nothing and is ignored.
fn check_body(method: &http::Method, bytes: &[u8], empty_allowed: bool) -> Result<(), MatrixError> {
    use http::Method;
    if *method == Method::GET || *method == Method::HEAD {
        return Ok(());
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        let required = (*method == Method::POST || *method == Method::PUT) && !empty_allowed;
        return if required { Err(MatrixError::not_json("A JSON object is required as the body")) } else { Ok(()) };
    }
    let text = std::str::from_utf8(bytes).map_err(|_| MatrixError::not_json("The body is not valid UTF-8"))?;
    if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
        return Err(MatrixError::not_json("The body is not valid JSON"));
    }
    if !text.trim_start().starts_with('{') {
        return Err(MatrixError::bad_json("The body must be a JSON object"));
    }
    Ok(())
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

    /// Like [`RumaRouter::ruma`], with options.
    fn ruma_with<T, H, X>(self, handler: H, options: RouteOptions) -> Self
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
        self.ruma_with::<T, _, _>(handler, RouteOptions::default())
    }

    fn ruma_guest<T, H, X>(self, handler: H) -> Self
    where
        T: IncomingRequest,
        H: Handler<X, S>,
        X: 'static,
    {
        self.ruma_with::<T, _, _>(handler, RouteOptions::GUESTS)
    }

    fn ruma_with<T, H, X>(mut self, handler: H, options: RouteOptions) -> Self
    where
        T: IncomingRequest,
        H: Handler<X, S>,
        X: 'static,
    {
        let filter = MethodFilter::try_from(T::METHOD).expect("ruma endpoints use standard methods");
        for path in T::PATH_BUILDER.all_paths() {
            let mut route = on(filter, handler.clone());
            if options.guests {
                route = route.layer(axum::Extension(GuestAllowed));
            }
            if options.empty_body {
                route = route.layer(axum::Extension(EmptyBodyAllowed));
            }
            if options.non_canonical_body {
                route = route.layer(axum::Extension(NonCanonicalBodyAllowed));
            }
            if let Some(fill) = options.body_defaults {
                route = route.layer(axum::Extension(BodyDefaults(fill)));
            }
            self = self.route(path, route);
        }
        self
    }
}
