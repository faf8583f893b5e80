//! Events as the client-server API shows them.

use common::api::roomserver::StoredEvent;
use serde_json::value::RawValue;

use super::MatrixError;

/// `event` in the client-server format.
pub(crate) fn client_event(event: &StoredEvent) -> Result<Box<RawValue>, MatrixError> {
    let out = common::pdu::client_format(&event.event_id, &event.room_id, &event.event)
        .map_err(|e| MatrixError::internal(format!("{e:#}")))?;
    serde_json::value::to_raw_value(&out).map_err(MatrixError::internal)
}
