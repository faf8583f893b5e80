mod versions;
mod well_known;

use axum::Router;
use common::{Runtime, http::RumaRouter};
use ruma::api::{
    client::discovery::{discover_homeserver, get_supported_versions},
    federation::discovery::discover_homeserver as discover_server,
};

pub fn router(rt: Runtime) -> Router {
    Router::new()
        .ruma::<get_supported_versions::Request, _, _>(versions::get_supported_versions)
        .ruma::<discover_homeserver::Request, _, _>(well_known::client)
        .ruma::<discover_server::Request, _, _>(well_known::server)
        .with_state(rt)
}
