//! One module per path of the client-server API.

mod account;
mod account_data;
mod admin_register;
mod ban;
mod capabilities;
mod create_room;
mod devices;
mod directory_list;
mod directory_room;
mod filter;
mod forget;
mod invite;
mod join;
mod joined_members;
mod joined_rooms;
mod kick;
mod knock;
mod leave;
mod login;
mod logout;
mod members;
mod notifications;
mod profile;
mod public_rooms;
mod push_rules;
mod pushers;
mod read_markers;
mod receipt;
mod redact;
mod refresh;
mod register;
mod report;
mod room_aliases;
mod room_event;
mod room_state;
mod send;
mod send_to_device;
mod typing;
mod unban;
mod upgrade;
mod versions;
mod well_known;

use std::sync::Arc;

use axum::{Router, routing::get};
use common::http::{RouteOptions, RumaRouter};
use ruma::api::{
    client::{
        account::{
            change_password, check_registration_token_validity, deactivate, get_username_availability,
            register as register_api, whoami,
        },
        alias::{create_alias, delete_alias, get_alias},
        config::{get_global_account_data, get_room_account_data, set_global_account_data, set_room_account_data},
        device::{delete_device, delete_devices, get_device, get_devices, update_device},
        directory::{get_public_rooms, get_public_rooms_filtered, get_room_visibility, set_room_visibility},
        discovery::{discover_homeserver, get_capabilities, get_supported_versions},
        filter::{create_filter, get_filter},
        knock::knock_room,
        membership::{
            ban_user, forget_room, get_member_events, invite_user, join_room_by_id, join_room_by_id_or_alias,
            joined_members as joined_members_api, joined_rooms as joined_rooms_api, kick_user, leave_room, unban_user,
        },
        message::send_message_event,
        profile::{delete_profile_field, get_profile, get_profile_field, set_profile_field},
        push::{
            delete_pushrule, get_notifications, get_pushers, get_pushrule, get_pushrule_actions, get_pushrule_enabled,
            get_pushrules_all, get_pushrules_global_scope, set_pusher, set_pushrule, set_pushrule_actions,
            set_pushrule_enabled,
        },
        read_marker::set_read_marker,
        receipt::create_receipt,
        redact::redact_event,
        room::{aliases, create_room as create_room_api, get_room_event, report_content, report_room, upgrade_room},
        session::{
            get_login_token, get_login_types, login as login_api, logout as logout_api, logout_all, refresh_token,
        },
        state::{get_state_event_for_key, get_state_events, send_state_event},
        to_device::send_event_to_device,
        typing::create_typing_event,
    },
    federation::discovery::discover_homeserver as discover_server,
};

use crate::App;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .ruma::<get_supported_versions::Request, _, _>(versions::get_supported_versions)
        .ruma::<discover_homeserver::Request, _, _>(well_known::client)
        .ruma::<discover_server::Request, _, _>(well_known::server)
        .ruma::<get_capabilities::v3::Request, _, _>(capabilities::get_capabilities)
        // Registration
        .ruma::<register_api::v3::Request, _, _>(register::register)
        .ruma::<get_username_availability::v3::Request, _, _>(register::available)
        .ruma::<check_registration_token_validity::v1::Request, _, _>(register::token_validity)
        .route("/_synapse/admin/v1/register", get(admin_register::nonce).post(admin_register::register))
        // Sessions
        .ruma::<get_login_types::v3::Request, _, _>(login::get_login_types)
        .ruma::<login_api::v3::Request, _, _>(login::login)
        .ruma::<get_login_token::v1::Request, _, _>(login::get_login_token)
        .ruma::<refresh_token::v3::Request, _, _>(refresh::refresh)
        .ruma_with::<logout_api::v3::Request, _, _>(logout::logout, RouteOptions::GUESTS_EMPTY_BODY)
        .ruma_with::<logout_all::v3::Request, _, _>(logout::logout_all, RouteOptions::GUESTS_EMPTY_BODY)
        .ruma_guest::<whoami::v3::Request, _, _>(account::whoami)
        .ruma::<change_password::v3::Request, _, _>(account::change_password)
        .ruma::<deactivate::v3::Request, _, _>(account::deactivate)
        // Devices
        .ruma_guest::<get_devices::v3::Request, _, _>(devices::get_devices)
        .ruma_guest::<get_device::v3::Request, _, _>(devices::get_device)
        .ruma_guest::<update_device::v3::Request, _, _>(devices::update_device)
        .ruma::<delete_device::v3::Request, _, _>(devices::delete_device)
        .ruma::<delete_devices::v3::Request, _, _>(devices::delete_devices)
        // Profiles
        .ruma::<get_profile::v3::Request, _, _>(profile::get_profile)
        .ruma::<get_profile_field::v3::Request, _, _>(profile::get_profile_field)
        .ruma_guest::<set_profile_field::v3::Request, _, _>(profile::set_profile_field)
        .ruma::<delete_profile_field::v3::Request, _, _>(profile::delete_profile_field)
        // Account data
        .ruma_guest::<get_global_account_data::v3::Request, _, _>(account_data::get_global)
        .ruma_guest::<set_global_account_data::v3::Request, _, _>(account_data::set_global)
        .ruma_guest::<get_room_account_data::v3::Request, _, _>(account_data::get_room)
        .ruma_guest::<set_room_account_data::v3::Request, _, _>(account_data::set_room)
        // Filters
        .ruma_guest::<create_filter::v3::Request, _, _>(filter::create_filter)
        .ruma_guest::<get_filter::v3::Request, _, _>(filter::get_filter)
        // Membership: an empty body is `{}` here, as Synapse takes it and clients send it
        .ruma_with::<join_room_by_id::v3::Request, _, _>(join::join_room_by_id, RouteOptions::GUESTS_EMPTY_BODY)
        .ruma_with::<join_room_by_id_or_alias::v3::Request, _, _>(
            join::join_room_by_id_or_alias,
            RouteOptions::GUESTS_EMPTY_BODY,
        )
        .ruma_with::<leave_room::v3::Request, _, _>(leave::leave_room, RouteOptions::GUESTS_EMPTY_BODY)
        .ruma_with::<forget_room::v3::Request, _, _>(forget::forget_room, RouteOptions::EMPTY_BODY)
        .ruma_with::<invite_user::v3::Request, _, _>(invite::invite_user, RouteOptions::EMPTY_BODY)
        .ruma_with::<kick_user::v3::Request, _, _>(kick::kick_user, RouteOptions::EMPTY_BODY)
        .ruma_with::<ban_user::v3::Request, _, _>(ban::ban_user, RouteOptions::EMPTY_BODY)
        .ruma_with::<unban_user::v3::Request, _, _>(unban::unban_user, RouteOptions::EMPTY_BODY)
        .ruma::<knock_room::v3::Request, _, _>(knock::knock_room)
        .ruma::<joined_rooms_api::v3::Request, _, _>(joined_rooms::joined_rooms)
        .ruma_guest::<get_member_events::v3::Request, _, _>(members::get_member_events)
        .ruma_guest::<joined_members_api::v3::Request, _, _>(joined_members::joined_members)
        // Room directory, aliases, typing, receipts and reports
        .ruma::<create_alias::v3::Request, _, _>(directory_room::create_alias)
        .ruma::<get_alias::v3::Request, _, _>(directory_room::get_alias)
        .ruma::<delete_alias::v3::Request, _, _>(directory_room::delete_alias)
        .ruma::<aliases::v3::Request, _, _>(room_aliases::get_room_aliases)
        .ruma::<get_room_visibility::v3::Request, _, _>(directory_list::get_room_visibility)
        .ruma::<set_room_visibility::v3::Request, _, _>(directory_list::set_room_visibility)
        .ruma::<get_public_rooms::v3::Request, _, _>(public_rooms::get_public_rooms)
        .ruma_guest::<get_public_rooms_filtered::v3::Request, _, _>(public_rooms::get_public_rooms_filtered)
        .ruma_guest::<create_typing_event::v3::Request, _, _>(typing::create_typing_event)
        .ruma_guest::<create_receipt::v3::Request, _, _>(receipt::create_receipt)
        .ruma_guest::<set_read_marker::v3::Request, _, _>(read_markers::set_read_marker)
        .ruma::<report_content::v3::Request, _, _>(report::report_event)
        .ruma::<report_room::v3::Request, _, _>(report::report_room)
        // Creating rooms and sending events
        .ruma::<create_room_api::v3::Request, _, _>(create_room::create_room)
        .ruma_guest::<send_message_event::v3::Request, _, _>(send::send_message)
        .ruma::<send_state_event::v3::Request, _, _>(room_state::send_state)
        .ruma_guest::<get_state_event_for_key::v3::Request, _, _>(room_state::get_state)
        .ruma_guest::<get_state_events::v3::Request, _, _>(room_state::get_all_state)
        .merge(room_state::empty_state_key_routes())
        .ruma_guest::<get_room_event::v3::Request, _, _>(room_event::get_event)
        .ruma::<redact_event::v3::Request, _, _>(redact::redact)
        .ruma::<upgrade_room::v3::Request, _, _>(upgrade::upgrade)
        // Send-to-device messages
        .ruma_guest::<send_event_to_device::v3::Request, _, _>(send_to_device::send_to_device)
        // Push rules: the whole ruleset
        .ruma_guest::<get_pushrules_all::v3::Request, _, _>(push_rules::get_all)
        .ruma_guest::<get_pushrules_global_scope::v3::Request, _, _>(push_rules::get_global)
        // Push rules: one rule; pushers and notifications
        .ruma::<get_pushrule::v3::Request, _, _>(push_rules::get_rule)
        .ruma::<set_pushrule::v3::Request, _, _>(push_rules::set_rule)
        .ruma::<delete_pushrule::v3::Request, _, _>(push_rules::delete_rule)
        .ruma::<get_pushrule_enabled::v3::Request, _, _>(push_rules::get_enabled)
        .ruma::<set_pushrule_enabled::v3::Request, _, _>(push_rules::set_enabled)
        .ruma::<get_pushrule_actions::v3::Request, _, _>(push_rules::get_actions)
        .ruma::<set_pushrule_actions::v3::Request, _, _>(push_rules::set_actions)
        .merge(push_rules::other_scope_routes())
        .ruma::<get_pushers::v3::Request, _, _>(pushers::get_pushers)
        .ruma::<set_pusher::v3::Request, _, _>(pushers::set_pusher)
        .ruma::<get_notifications::v3::Request, _, _>(notifications::get_notifications)
        .with_state(app)
}
