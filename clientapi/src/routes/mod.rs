//! One module per path of the client-server API.

mod account;
mod account_data;
mod admin_register;
mod capabilities;
mod devices;
mod filter;
mod login;
mod logout;
mod profile;
mod refresh;
mod register;
mod versions;
mod well_known;

use std::sync::Arc;

use axum::{Router, routing::get};
use common::http::RumaRouter;
use ruma::api::{
    client::{
        account::{
            change_password, check_registration_token_validity, deactivate, get_username_availability,
            register as register_api, whoami,
        },
        config::{get_global_account_data, get_room_account_data, set_global_account_data, set_room_account_data},
        device::{delete_device, delete_devices, get_device, get_devices, update_device},
        discovery::{discover_homeserver, get_capabilities, get_supported_versions},
        filter::{create_filter, get_filter},
        profile::{delete_profile_field, get_profile, get_profile_field, set_profile_field},
        session::{
            get_login_token, get_login_types, login as login_api, logout as logout_api, logout_all, refresh_token,
        },
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
        .ruma_guest::<logout_api::v3::Request, _, _>(logout::logout)
        .ruma_guest::<logout_all::v3::Request, _, _>(logout::logout_all)
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
        .with_state(app)
}
