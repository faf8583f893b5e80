//! `GET /_matrix/federation/v1/version`.

use common::http::{Ruma, RumaResponse};
use ruma::api::federation::discovery::get_server_version::v1::{Request, Response, Server};

pub async fn get_server_version(_: Ruma<Request>) -> RumaResponse<Response> {
    let mut server = Server::new();
    server.name = Some(env!("CARGO_PKG_NAME").replace("federationreceiver", "homeserver"));
    server.version = Some(env!("CARGO_PKG_VERSION").to_owned());
    let mut response = Response::new();
    response.server = Some(server);
    RumaResponse(response)
}
