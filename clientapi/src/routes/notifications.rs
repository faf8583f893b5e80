//! `GET /notifications`: the events that notified the user, newest first;
//! userapi's push work records them.

use std::sync::Arc;

use axum::extract::State;
use common::{
    api::userapi::{QueryNotifications, QueryNotificationsRequest},
    http::{MatrixError, Ruma, RumaResponse},
};
use ruma::api::client::push::get_notifications;

use crate::App;

const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;

pub async fn get_notifications(
    State(app): State<Arc<App>>,
    request: Ruma<get_notifications::v3::Request>,
) -> Result<RumaResponse<get_notifications::v3::Response>, MatrixError> {
    let user = request.require_user()?;
    let get_notifications::v3::Request { from, limit, only, .. } = request.body.clone();
    let only_highlight = match only.as_deref() {
        None => false,
        Some("highlight") => true,
        Some(other) => {
            return Err(MatrixError::invalid_param(format!("only can be \"highlight\", not {other:?}")));
        }
    };
    let limit = limit.map_or(DEFAULT_LIMIT, |l| u32::try_from(u64::from(l)).unwrap_or(MAX_LIMIT)).clamp(1, MAX_LIMIT);
    let query = QueryNotificationsRequest { user_id: user.user_id.clone(), from, limit, only_highlight };
    let answer = app.rt.bus.call::<QueryNotifications>(&query).await?;
    let notifications = answer
        .notifications
        .into_iter()
        .map(serde_json::from_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(MatrixError::internal)?;
    let mut response = get_notifications::v3::Response::new(notifications);
    response.next_token = answer.next_token;
    Ok(RumaResponse(response))
}
