//! Every server-server path federationreceiver serves, mounted in one place.

mod backfill;
mod event;
mod event_auth;
mod invite;
mod key_server;
mod make_join;
mod make_knock;
mod make_leave;
mod missing_events;
mod public_rooms;
mod query_directory;
mod query_profile;
mod send;
mod send_join;
mod send_knock;
mod send_leave;
mod state;
mod timestamp_to_event;
mod version;

use axum::{
    Router,
    routing::{get, put},
};
use common::http::{RouteOptions, RumaRouter};
use ruma::api::federation::{
    authorization::get_event_authorization,
    backfill::get_backfill,
    directory::{get_public_rooms, get_public_rooms_filtered},
    discovery::{get_remote_server_keys, get_remote_server_keys_batch, get_server_keys, get_server_version},
    event::{get_event, get_event_by_timestamp, get_missing_events, get_room_state, get_room_state_ids},
    membership::{
        create_invite, create_join_event, create_knock_event, create_leave_event, prepare_join_event,
        prepare_knock_event, prepare_leave_event,
    },
    query::{get_profile_information, get_room_information},
    transactions::send_transaction_message,
};

use crate::App;

pub fn router(app: App) -> Router {
    let keys = Router::new()
        // Keys
        .ruma::<get_server_keys::v2::Request, _, _>(key_server::get_server_keys)
        // Deprecated, but still requested by older servers.
        .route("/_matrix/key/v2/server/{key_id}", get(key_server::get_server_keys))
        .ruma::<get_remote_server_keys_batch::v2::Request, _, _>(key_server::query_keys_batch)
        .ruma::<get_remote_server_keys::v2::Request, _, _>(key_server::query_keys)
        // Deprecated too, and still asked.
        .route("/_matrix/key/v2/query/{server_name}/{key_id}", get(key_server::query_key_by_id))
        .with_state(app.rt.clone());
    Router::new()
        .ruma::<get_server_version::v1::Request, _, _>(version::get_server_version)
        // Transactions
        .ruma_with::<send_transaction_message::v1::Request, _, _>(
            send::send_transaction,
            RouteOptions::NON_CANONICAL_BODY,
        )
        // Membership
        .ruma::<prepare_join_event::v1::Request, _, _>(make_join::make_join)
        .ruma::<create_join_event::v2::Request, _, _>(send_join::send_join)
        .ruma::<prepare_leave_event::v1::Request, _, _>(make_leave::make_leave)
        .ruma::<create_leave_event::v2::Request, _, _>(send_leave::send_leave)
        // v1 of send_join and send_leave, which older servers still use:
        // the same request as v2, another answer.
        .route("/_matrix/federation/v1/send_join/{room_id}/{event_id}", put(send_join::send_join_v1))
        .route("/_matrix/federation/v1/send_leave/{room_id}/{event_id}", put(send_leave::send_leave_v1))
        .ruma::<prepare_knock_event::v1::Request, _, _>(make_knock::make_knock)
        .ruma::<create_knock_event::v1::Request, _, _>(send_knock::send_knock)
        .ruma::<create_invite::v2::Request, _, _>(invite::invite)
        .ruma_with::<create_invite::v1::Request, _, _>(
            invite::invite_v1,
            RouteOptions::body_defaults(invite::v1_defaults),
        )
        // Events and state
        .ruma::<get_event::v1::Request, _, _>(event::get_event)
        .ruma::<get_room_state::v1::Request, _, _>(state::get_state)
        .ruma::<get_room_state_ids::v1::Request, _, _>(state::get_state_ids)
        .ruma::<get_event_authorization::v1::Request, _, _>(event_auth::get_event_auth)
        .ruma::<get_backfill::v1::Request, _, _>(backfill::get_backfill)
        .ruma::<get_event_by_timestamp::v1::Request, _, _>(timestamp_to_event::timestamp_to_event)
        .ruma_with::<get_missing_events::v1::Request, _, _>(
            missing_events::get_missing_events,
            RouteOptions::body_defaults(missing_events::body_defaults),
        )
        // Queries and the directory
        .ruma::<get_profile_information::v1::Request, _, _>(query_profile::query_profile)
        .ruma::<get_room_information::v1::Request, _, _>(query_directory::query_directory)
        .ruma::<get_public_rooms::v1::Request, _, _>(public_rooms::get_public_rooms)
        .ruma::<get_public_rooms_filtered::v1::Request, _, _>(public_rooms::get_public_rooms_filtered)
        .with_state(app)
        .merge(keys)
}
