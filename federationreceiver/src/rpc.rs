//! The questions federationreceiver answers, one handler per RPC method.

use common::{
    api::federationreceiver::*,
    bus::{RemoteError, serve},
};

use crate::{App, backfill};

pub fn start(app: &App) {
    let rt = &app.rt;
    let (bus, shutdown, app) = (rt.bus.clone(), rt.shutdown.clone(), app.clone());
    rt.spawn(
        <PerformBackfill as common::bus::Rpc>::METHOD,
        serve::<PerformBackfill, _, _>(bus, shutdown, move |request| {
            let app = app.clone();
            async move { perform_backfill(&app, request).await }
        }),
    );
}

async fn perform_backfill(app: &App, request: PerformBackfillRequest) -> Result<PerformBackfillResponse, RemoteError> {
    Ok(PerformBackfillResponse { accepted: backfill::perform(app, &request).await? })
}
