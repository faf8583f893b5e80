//! `PUT /_matrix/federation/v1/send/{txnId}`: a transaction of PDUs and EDUs
//! from another server. A transaction is processed once: a repeat gets the
//! first answer.

use axum::extract::State;
use common::http::{MatrixError, Ruma, RumaResponse};
use http::StatusCode;
use ruma::api::{
    error::ErrorKind,
    federation::transactions::send_transaction_message::v1::{Request, Response},
};

use crate::{App, incoming, storage::Seen};

/// The spec's bounds on one transaction.
const MAX_PDUS: usize = 50;
const MAX_EDUS: usize = 100;

pub async fn send_transaction(
    State(app): State<App>,
    request: Ruma<Request>,
) -> Result<RumaResponse<Response>, MatrixError> {
    let origin = request.origin()?.to_owned();
    let body = request.body;
    if body.origin != origin {
        return Err(MatrixError::invalid_param("The transaction's origin is not the server that signed it"));
    }
    if body.pdus.len() > MAX_PDUS || body.edus.len() > MAX_EDUS {
        return Err(MatrixError::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::TooLarge,
            format!("A transaction holds at most {MAX_PDUS} PDUs and {MAX_EDUS} EDUs"),
        ));
    }
    let txn_id = body.transaction_id.as_str();
    match app.store.claim_transaction(&origin, txn_id).await? {
        Seen::New => {}
        Seen::Answered(response) => {
            return Ok(RumaResponse(Response::new(results_from_json(&response)?)));
        }
        Seen::InProgress => {
            return Err(MatrixError::unavailable("The transaction is being processed; try again"));
        }
    }
    let results = incoming::process(&app, &origin, &body.pdus).await;
    if !body.edus.is_empty() {
        tracing::debug!(%origin, count = body.edus.len(), "EDUs are not handled yet");
    }
    let stored = serde_json::to_string(&ResultsJson(&results)).map_err(MatrixError::internal)?;
    if let Err(e) = app.store.answer_transaction(&origin, txn_id, &stored).await {
        let _ = app.store.release_transaction(&origin, txn_id).await;
        return Err(e.into());
    }
    Ok(RumaResponse(Response::new(results)))
}

/// The results as ruma reads them back (`{"$id": {}}` or `{"$id": {"error": …}}`).
struct ResultsJson<'a>(&'a incoming::Results);

impl serde::Serialize for ResultsJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (event_id, result) in self.0 {
            match result {
                Ok(()) => map.serialize_entry(event_id, &serde_json::json!({}))?,
                Err(error) => map.serialize_entry(event_id, &serde_json::json!({ "error": error }))?,
            }
        }
        map.end()
    }
}

fn results_from_json(text: &str) -> Result<incoming::Results, MatrixError> {
    let map: std::collections::BTreeMap<ruma::OwnedEventId, serde_json::Value> =
        serde_json::from_str(text).map_err(MatrixError::internal)?;
    Ok(map
        .into_iter()
        .map(|(event_id, result)| match result.get("error").and_then(|e| e.as_str()) {
            Some(error) => (event_id, Err(error.to_owned())),
            None => (event_id, Ok(())),
        })
        .collect())
}
