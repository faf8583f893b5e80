//! federationreceiver's contracts: the questions about other servers' events
//! that it answers by fetching them, checking them and handing them to the
//! roomserver, which never waits on the network itself.

use ruma::{OwnedEventId, OwnedRoomId};
use serde::{Deserialize, Serialize};

use crate::rpc_method;

// ---- Questions ----

rpc_method!(
    /// Fetches the room's history before `from` from the other servers in
    /// the room (`/backfill`), and has the roomserver take what passes its
    /// checks as `Historical` events. Answered once the roomserver has
    /// decided on them, so their outputs are on `OutputRoomEvent` by then.
    PerformBackfill: "federationreceiver"."perform_backfill", retry = false, PerformBackfillRequest => PerformBackfillResponse
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PerformBackfillRequest {
    pub room_id: OwnedRoomId,
    /// The events to go back from (prev events of the oldest ones known).
    pub from: Vec<OwnedEventId>,
    pub limit: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PerformBackfillResponse {
    /// How many events the roomserver accepted.
    pub accepted: usize,
}
