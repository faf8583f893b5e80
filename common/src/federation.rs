//! Typed requests to other servers. Every component but federationsender
//! makes them through it (`SendFederationRequest`), so discovery, signing,
//! TLS and the private-address rules live in one place: the caller builds a
//! ruma request, federationsender signs and sends it, and the answer is
//! parsed here with the endpoint's own response type.

use std::time::Duration;

use ruma::{
    ServerName,
    api::{IncomingResponse, OutgoingRequest, federation::authentication::ServerSignatures, path_builder::SinglePath},
};
use serde_json::value::RawValue;

use crate::{
    api::federationsender::{FederationRequest, FederationResponse, SendFederationRequest},
    bus::{Bus, RemoteErrorKind, RpcError},
    http::MatrixError,
};

/// How long a federation request may take, unless the caller says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request to another server got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// The server could not be found or reached, or did not answer in time.
    #[error("{0}")]
    Unreachable(String),
    /// It answered with an error status.
    #[error("the server answered {status}: {errcode} {message}")]
    Refused { status: u16, errcode: String, message: String, body: String },
    /// It answered 2xx with a body the endpoint's type cannot read.
    #[error("unreadable answer: {0}")]
    BadResponse(String),
    /// federationsender could not be asked.
    #[error(transparent)]
    Rpc(RpcError),
}

impl FederationError {
    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            FederationError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the server does not know the endpoint (404, or 400
    /// M_UNRECOGNIZED): an older server, to be asked on an older version.
    pub fn is_unrecognized(&self) -> bool {
        match self {
            FederationError::Refused { status: 404, .. } => true,
            FederationError::Refused { status: 400, errcode, .. } => errcode == "M_UNRECOGNIZED",
            _ => false,
        }
    }

    /// Whether the server said it does not have what was asked.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

impl From<FederationError> for MatrixError {
    /// What a client is told when a server it needed failed: a refusal in
    /// the client's own terms (a 4xx with a Matrix errcode, such as 400
    /// M_INCOMPATIBLE_ROOM_VERSION or 403 M_FORBIDDEN) is passed on as it
    /// came, since the client can act on it; the rest is the other server's
    /// fault, 502.
    fn from(e: FederationError) -> Self {
        use http::StatusCode;
        use ruma::api::error::ErrorKind;
        match e {
            FederationError::Refused { status, body, message, .. } => match passed_on(status, &body) {
                Some(error) => error,
                // A 404 or 403 without an errcode (a proxy's page) still says it.
                None if status == 404 => MatrixError::not_found(message),
                None if status == 403 => MatrixError::forbidden(message),
                None => MatrixError::new(
                    StatusCode::BAD_GATEWAY,
                    ErrorKind::Unknown,
                    format!("The other server answered {status}: {message}"),
                ),
            },
            FederationError::Rpc(e) => e.into(),
            other => MatrixError::new(StatusCode::BAD_GATEWAY, ErrorKind::Unknown, other.to_string()),
        }
    }
}

/// The other server's 4xx as our own answer, when it carries a Matrix
/// errcode. Not a 401, nor an errcode about access tokens: those are about
/// our server's signature, and a client would take them for its own token
/// and log out.
fn passed_on(status: u16, body: &str) -> Option<MatrixError> {
    use ruma::api::error::{ErrorKind, StandardErrorBody};
    if !(400..500).contains(&status) || status == 401 {
        return None;
    }
    let mut object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(body).ok()?;
    object.entry("error").or_insert_with(|| "".into());
    let error: StandardErrorBody = serde_json::from_value(object.into()).ok()?;
    if matches!(error.kind, ErrorKind::UnknownToken(_) | ErrorKind::MissingToken | ErrorKind::Unauthorized) {
        return None;
    }
    let status = http::StatusCode::from_u16(status).ok()?;
    Some(MatrixError::new(status, error.kind, error.message))
}

/// Sends `request` to `destination` and reads the answer as `R`'s response.
pub async fn request<R>(bus: &Bus, destination: &ServerName, request: R) -> Result<R::IncomingResponse, FederationError>
where
    R: OutgoingRequest<Authentication = ServerSignatures, PathBuilder = SinglePath>,
{
    request_within(bus, destination, request, DEFAULT_TIMEOUT).await
}

/// [`request`] with its own time limit.
pub async fn request_within<R>(
    bus: &Bus,
    destination: &ServerName,
    request: R,
    timeout: Duration,
) -> Result<R::IncomingResponse, FederationError>
where
    R: OutgoingRequest<Authentication = ServerSignatures, PathBuilder = SinglePath>,
{
    decode::<R::IncomingResponse>(send(bus, encode(destination, request)?, timeout).await?)
}

/// Has federationsender send `outgoing`, within `timeout`.
async fn send(
    bus: &Bus,
    mut outgoing: FederationRequest,
    timeout: Duration,
) -> Result<FederationResponse, FederationError> {
    outgoing.timeout_ms = Some(timeout.as_millis() as u64);
    // federationsender's own time limit ends the request first; the RPC's
    // budget leaves it room to say so.
    let budget = timeout + Duration::from_secs(5);
    match bus.call_within::<SendFederationRequest>(&outgoing, budget).await {
        Ok(response) => Ok(response),
        Err(RpcError::Remote(e)) if e.kind == RemoteErrorKind::Unreachable => {
            Err(FederationError::Unreachable(e.message))
        }
        Err(e) => Err(FederationError::Rpc(e)),
    }
}

/// Sends a request built as it is sent (for endpoint versions ruma has no
/// type for) and reads a v1-style answer, `[200, body]`, as `T`.
pub async fn request_v1<T: serde::de::DeserializeOwned>(
    bus: &Bus,
    outgoing: FederationRequest,
    timeout: Duration,
) -> Result<T, FederationError> {
    let response = send(bus, outgoing, timeout).await?;
    if response.status >= 400 {
        return Err(refusal(response));
    }
    let (_, body): (u16, T) =
        serde_json::from_str(&response.body).map_err(|e| FederationError::BadResponse(e.to_string()))?;
    Ok(body)
}

/// The request as federationsender signs and sends it.
pub fn encode<R>(destination: &ServerName, request: R) -> Result<FederationRequest, FederationError>
where
    R: OutgoingRequest<Authentication = ServerSignatures, PathBuilder = SinglePath>,
{
    // The base URL only shapes the URI; federationsender picks the address.
    let http = request
        .try_into_http_request_inner("https://destination.invalid", ())
        .map_err(|e| FederationError::BadResponse(format!("cannot encode the request: {e}")))?;
    let (parts, body) = http.into_parts();
    let bytes: Vec<u8> = ruma::api::OutgoingBody::try_into_buf(body)
        .map_err(|e| FederationError::BadResponse(format!("cannot encode the request: {}", e.into())))?;
    let body = if bytes.is_empty() {
        None
    } else {
        let text = String::from_utf8(bytes).map_err(|e| FederationError::BadResponse(e.to_string()))?;
        Some(RawValue::from_string(text).map_err(|e| FederationError::BadResponse(e.to_string()))?)
    };
    let uri = parts.uri.path_and_query().map(|pq| pq.as_str().to_owned()).unwrap_or_else(|| "/".to_owned());
    Ok(FederationRequest {
        destination: destination.to_owned(),
        method: parts.method.as_str().to_owned(),
        uri,
        body,
        timeout_ms: None,
    })
}

/// Reads an answer with the endpoint's response type.
pub fn decode<T: IncomingResponse>(response: FederationResponse) -> Result<T, FederationError> {
    if response.status >= 400 {
        return Err(refusal(response));
    }
    let http = http::Response::builder()
        .status(response.status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(response.body.as_bytes())
        .map_err(|e| FederationError::BadResponse(e.to_string()))?;
    T::try_from_http_response_inner(http).map_err(|e| FederationError::BadResponse(e.to_string()))
}

fn refusal(response: FederationResponse) -> FederationError {
    let error: serde_json::Value = serde_json::from_str(&response.body).unwrap_or_default();
    let text = |field: &str| error.get(field).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    FederationError::Refused {
        status: response.status,
        errcode: text("errcode"),
        message: text("error"),
        body: response.body,
    }
}
