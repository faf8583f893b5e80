//! `GET /_matrix/client/versions`.

use common::http::{Ruma, RumaResponse};
use ruma::api::client::discovery::get_supported_versions::{Request, Response};

/// The spec versions whose endpoints clients may use with us.
const VERSIONS: &[&str] = &[
    "r0.0.1", "r0.1.0", "r0.2.0", "r0.3.0", "r0.4.0", "r0.5.0", "r0.6.0", "r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4",
    "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11", "v1.12", "v1.13", "v1.14", "v1.15", "v1.16",
];

pub async fn get_supported_versions(_: Ruma<Request>) -> RumaResponse<Response> {
    RumaResponse(Response::new(VERSIONS.iter().map(|v| (*v).to_owned()).collect()))
}
