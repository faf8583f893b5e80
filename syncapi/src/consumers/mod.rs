//! syncapi's durable consumers: each is shared by every instance and handles
//! one message at a time, so positions are assigned in order.

mod account_data;
mod ephemeral;
mod notification_counts;
mod presence;
mod room_events;
mod to_device;

use std::sync::Arc;

use common::bus::{ConsumerSpec, HandlerError, StreamMessage, consume};

use crate::App;

pub fn start(app: &Arc<App>) {
    spawn(app, "syncapi_room_events", room_events::handle);
    spawn(app, "syncapi_receipts", ephemeral::receipt);
    spawn(app, "syncapi_typing", ephemeral::typing);
    spawn(app, "syncapi_account_data", account_data::handle);
    spawn(app, "syncapi_to_device", to_device::handle);
    spawn(app, "syncapi_presence", presence::handle);
    spawn(app, "syncapi_notification_counts", notification_counts::handle);
    let expiring = app.clone();
    app.rt.spawn("syncapi typing expiry", async move { ephemeral::expire_typing(expiring).await });
}

fn spawn<M, F, Fut>(app: &Arc<App>, durable: &'static str, handler: F)
where
    M: StreamMessage + Send + 'static,
    F: Fn(Arc<App>, M) -> Fut + Send + Sync + Copy + 'static,
    Fut: std::future::Future<Output = Result<(), HandlerError>> + Send,
{
    let (bus, shutdown, app) = (app.rt.bus.clone(), app.rt.shutdown.clone(), app.clone());
    app.rt.clone().spawn(durable, async move {
        consume(&bus, ConsumerSpec::ordered(durable), shutdown, |msg: M, _| handler(app.clone(), msg)).await
    });
}
