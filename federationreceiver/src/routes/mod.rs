mod key_server;
mod version;

use axum::{Router, routing::get};
use common::{Runtime, http::RumaRouter};
use ruma::api::federation::discovery::{
    get_remote_server_keys, get_remote_server_keys_batch, get_server_keys, get_server_version,
};

pub fn router(rt: Runtime) -> Router {
    Router::new()
        .ruma::<get_server_keys::v2::Request, _, _>(key_server::get_server_keys)
        // Deprecated, but still requested by older servers.
        .route("/_matrix/key/v2/server/{key_id}", get(key_server::get_server_keys))
        .ruma::<get_remote_server_keys_batch::v2::Request, _, _>(key_server::query_keys_batch)
        .ruma::<get_remote_server_keys::v2::Request, _, _>(key_server::query_keys)
        .ruma::<get_server_version::v1::Request, _, _>(version::get_server_version)
        .with_state(rt)
}
