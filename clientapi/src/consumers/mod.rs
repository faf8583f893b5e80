//! What clientapi consumes from the streams.

mod profile_updates;

use std::sync::Arc;

use crate::App;

pub fn start(app: &Arc<App>) {
    profile_updates::start(app);
}
