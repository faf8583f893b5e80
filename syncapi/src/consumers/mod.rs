//! syncapi's durable consumers: each is shared by every instance and
//! assigns positions in stream order. Room events, the busiest, are applied
//! in batches by the instance holding their lease; the others one message
//! at a time.

mod account_data;
mod ephemeral;
mod notification_counts;
mod presence;
mod room_events;
mod to_device;

use std::{sync::Arc, time::Duration};

use common::bus::{ConsumerSpec, HandlerError, Stream, StreamMessage, consume, consume_batches};

use crate::App;

const ROOM_EVENTS: &str = "syncapi_room_events";

/// What a read of room history waits for (see `Bus::fence`).
pub const HISTORY_FENCE: &[(Stream, &str)] = &[(Stream::OutputRoomEvent, ROOM_EVENTS)];

/// What `/sync` waits for: every consumer.
pub const SYNC_FENCE: &[(Stream, &str)] = &[
    (Stream::OutputRoomEvent, ROOM_EVENTS),
    (Stream::OutputReceiptEvent, "syncapi_receipts"),
    (Stream::OutputTypingEvent, "syncapi_typing"),
    (Stream::OutputClientData, "syncapi_account_data"),
    (Stream::OutputSendToDeviceEvent, "syncapi_to_device"),
    (Stream::OutputPresenceEvent, "syncapi_presence"),
    (Stream::OutputNotificationData, "syncapi_notification_counts"),
];

/// The most room events applied in one transaction.
const ROOM_EVENTS_BATCH: i64 = 64;

pub fn start(app: &Arc<App>) {
    let (bus, shutdown, events) = (app.rt.bus.clone(), app.rt.shutdown.clone(), app.clone());
    app.rt.spawn(ROOM_EVENTS, async move {
        let spec = ConsumerSpec {
            max_ack_pending: ROOM_EVENTS_BATCH,
            // What a dead lease holder had in hand comes back this soon.
            ack_wait: Duration::from_secs(5),
            ..ConsumerSpec::ordered(ROOM_EVENTS)
        };
        consume_batches(&bus, spec, shutdown, |batch| room_events::handle(events.clone(), batch)).await
    });
    spawn(app, SYNC_FENCE[1], ephemeral::receipt);
    spawn(app, SYNC_FENCE[2], ephemeral::typing);
    spawn(app, SYNC_FENCE[3], account_data::handle);
    spawn(app, SYNC_FENCE[4], to_device::handle);
    spawn(app, SYNC_FENCE[5], presence::handle);
    spawn(app, SYNC_FENCE[6], notification_counts::handle);
    let expiring = app.clone();
    app.rt.spawn("syncapi typing expiry", async move { ephemeral::expire_typing(expiring).await });
}

fn spawn<M, F, Fut>(app: &Arc<App>, (stream, durable): (Stream, &'static str), handler: F)
where
    M: StreamMessage + Send + 'static,
    F: Fn(Arc<App>, M) -> Fut + Send + Sync + Copy + 'static,
    Fut: std::future::Future<Output = Result<(), HandlerError>> + Send,
{
    assert_eq!(stream, M::STREAM, "{durable} reads {:?}", M::STREAM);
    let (bus, shutdown, app) = (app.rt.bus.clone(), app.rt.shutdown.clone(), app.clone());
    app.rt.clone().spawn(durable, async move {
        consume(&bus, ConsumerSpec::ordered(durable), shutdown, |msg: M, _| handler(app.clone(), msg)).await
    });
}
