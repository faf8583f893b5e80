//! The room directory: local aliases, which rooms are published, and the
//! summaries `/publicRooms` lists. The summaries are a projection of the
//! rooms' current state, fed by this module's own consumer of
//! `OutputRoomEvent`, so listing rooms never touches their history.

mod aliases;
mod projection;
mod public_rooms;

use common::{Runtime, storage::Db};

pub fn start(rt: &Runtime, db: Db) {
    projection::start(rt, db.clone());
    aliases::start(rt, db.clone());
    public_rooms::start(rt, db);
}
