//! `POST /user/{userId}/filter` and `GET /user/{userId}/filter/{filterId}`.

use std::sync::Arc;

use axum::{Json, extract::State};
use common::{
    api::userapi::{CreateFilter, CreateFilterRequest, QueryFilter, QueryFilterRequest},
    http::{MatrixError, Ruma, RumaResponse},
};
use ruma::api::client::filter::{create_filter, get_filter};

use crate::{App, own_account};

pub async fn create_filter(
    State(app): State<Arc<App>>,
    request: Ruma<create_filter::v3::Request>,
) -> Result<RumaResponse<create_filter::v3::Response>, MatrixError> {
    own_account(request.user.as_ref(), &request.body.user_id)?;
    if !matches!(request.body.filter.event_format.as_str(), "client" | "federation") {
        return Err(MatrixError::bad_json("event_format must be \"client\" or \"federation\""));
    }
    // Kept as the client wrote it (ruma has checked it), so that it comes back unchanged.
    let filter = serde_json::from_slice(&request.raw_body).map_err(|e| MatrixError::bad_json(e.to_string()))?;
    let create = CreateFilterRequest { user_id: request.body.user_id.clone(), filter };
    let filter_id = app.rt.bus.call::<CreateFilter>(&create).await?;
    Ok(RumaResponse(create_filter::v3::Response::new(filter_id)))
}

pub async fn get_filter(
    State(app): State<Arc<App>>,
    request: Ruma<get_filter::v3::Request>,
) -> Result<Json<Box<serde_json::value::RawValue>>, MatrixError> {
    own_account(request.user.as_ref(), &request.body.user_id)?;
    let query = QueryFilterRequest { user_id: request.body.user_id.clone(), filter_id: request.body.filter_id.clone() };
    let filter = app.rt.bus.call::<QueryFilter>(&query).await?;
    Ok(Json(filter))
}
