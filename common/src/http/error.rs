//! The one error type of every HTTP handler: `{"errcode", "error"}` with the
//! status the spec gives, rendered by ruma.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use ruma::api::{
    OutgoingResponseExt,
    error::{Error, ErrorBody, ErrorKind, StandardErrorBody},
};

use crate::bus::{RemoteErrorKind, RpcError};

#[derive(Debug)]
pub struct MatrixError(Error);

impl MatrixError {
    pub fn new(status: StatusCode, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self(Error::new(status, ErrorBody::Standard(StandardErrorBody::new(kind, message.into()))))
    }

    pub fn status(&self) -> StatusCode {
        self.0.status_code
    }

    pub fn unrecognized() -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorKind::Unrecognized, "Unrecognized request")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, ErrorKind::Unrecognized, "Method not allowed on this endpoint")
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorKind::NotFound, message)
    }

    pub fn not_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorKind::NotJson, message)
    }

    pub fn bad_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorKind::BadJson, message)
    }

    pub fn invalid_param(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorKind::InvalidParam, message)
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::TooLarge,
            format!("Request body is larger than {limit} bytes"),
        )
    }

    pub fn limit_exceeded(retry_after: std::time::Duration) -> Self {
        let mut data = ruma::api::error::LimitExceededErrorData::new();
        data.retry_after = Some(ruma::api::error::RetryAfter::Delay(retry_after));
        Self::new(StatusCode::TOO_MANY_REQUESTS, ErrorKind::LimitExceeded(data), "Too many requests")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorKind::Forbidden, message)
    }

    pub fn missing_token() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorKind::MissingToken, "Missing access token")
    }

    /// 401 M_UNKNOWN_TOKEN; `soft_logout` tells the client it may refresh or
    /// log in again without losing its device.
    pub fn unknown_token(soft_logout: bool, message: impl Into<String>) -> Self {
        let mut data = ruma::api::error::UnknownTokenErrorData::new();
        data.soft_logout = soft_logout;
        Self::new(StatusCode::UNAUTHORIZED, ErrorKind::UnknownToken(data), message)
    }

    pub fn user_deactivated() -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorKind::UserDeactivated, "This account has been deactivated")
    }

    pub fn guest_access_forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorKind::GuestAccessForbidden, "Guests may not use this endpoint")
    }

    pub fn missing_param(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorKind::MissingParam, message)
    }

    pub fn unknown(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, ErrorKind::Unknown, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, ErrorKind::Unknown, message)
    }

    /// The `errcode` and `error` of the body, to embed in another answer
    /// (a user-interactive authentication challenge).
    pub fn parts(self) -> (String, String) {
        let body = self
            .0
            .try_into_http_response::<Vec<u8>>()
            .ok()
            .and_then(|response| serde_json::from_slice::<serde_json::Value>(response.body()).ok())
            .unwrap_or_default();
        let text = |key: &str| body[key].as_str().unwrap_or_default().to_owned();
        (text("errcode"), text("error"))
    }

    /// A server-side failure: logged in full, answered without details.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(error = %error, "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorKind::Unknown, "Internal server error")
    }
}

impl From<anyhow::Error> for MatrixError {
    fn from(e: anyhow::Error) -> Self {
        // No database connection free in time is overload, not a fault: the
        // client may try again.
        if e.chain().any(|cause| matches!(cause.downcast_ref::<sqlx::Error>(), Some(sqlx::Error::PoolTimedOut))) {
            tracing::warn!(error = format!("{e:#}"), "no database connection was free");
            return Self::unavailable("The server is busy; try again");
        }
        Self::internal(format!("{e:#}"))
    }
}

impl From<RpcError> for MatrixError {
    fn from(e: RpcError) -> Self {
        match e {
            RpcError::Remote(remote) => match remote.kind {
                RemoteErrorKind::NotFound => Self::not_found(remote.message),
                RemoteErrorKind::BadRequest => Self::invalid_param(remote.message),
                RemoteErrorKind::Forbidden => Self::forbidden(remote.message),
                RemoteErrorKind::Internal => Self::internal(remote.message),
                RemoteErrorKind::UnknownToken { soft } => Self::unknown_token(soft, remote.message),
                RemoteErrorKind::UserDeactivated => Self::user_deactivated(),
                RemoteErrorKind::UserInUse => Self::new(StatusCode::BAD_REQUEST, ErrorKind::UserInUse, remote.message),
                RemoteErrorKind::InvalidUsername => {
                    Self::new(StatusCode::BAD_REQUEST, ErrorKind::InvalidUsername, remote.message)
                }
                RemoteErrorKind::WeakPassword => {
                    Self::new(StatusCode::BAD_REQUEST, ErrorKind::WeakPassword, remote.message)
                }
                RemoteErrorKind::MissingParam => Self::missing_param(remote.message),
                RemoteErrorKind::Unreachable => Self::new(StatusCode::BAD_GATEWAY, ErrorKind::Unknown, remote.message),
            },
            RpcError::Timeout(_) | RpcError::Unavailable(_) => {
                tracing::warn!(error = %e, "a component did not answer");
                Self::unavailable("The server is temporarily unable to answer; try again")
            }
            RpcError::Transport(_) | RpcError::Decode(_) => Self::internal(e),
        }
    }
}

impl IntoResponse for MatrixError {
    fn into_response(self) -> Response {
        match self.0.try_into_http_response::<bytes::BytesMut>() {
            Ok(response) => response.map(|body| axum::body::Body::from(body.freeze())),
            Err(e) => {
                tracing::error!(error = %e, "cannot render an error response");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_free_database_connection_is_503_and_other_failures_500() {
        let busy = anyhow::Error::from(sqlx::Error::PoolTimedOut).context("cannot look up the access token");
        assert_eq!(MatrixError::from(busy).into_response().status(), StatusCode::SERVICE_UNAVAILABLE);
        let broken = anyhow::Error::from(sqlx::Error::RowNotFound).context("cannot look up the access token");
        assert_eq!(MatrixError::from(broken).into_response().status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
