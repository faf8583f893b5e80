//! `roomserver_rooms`: each room's version, current state snapshot, forward
//! extremities and stream position. Read fresh for every event: another
//! instance may have moved the room on since.

use ruma::{OwnedEventId, RoomId, RoomVersionId};
use sqlx::{AnyConnection, AnyPool};

#[derive(Clone, Debug)]
pub struct Room {
    pub room_version: RoomVersionId,
    pub current_state: Option<i64>,
    pub latest_event_ids: Vec<OwnedEventId>,
    pub max_depth: i64,
    pub last_stream_ordering: i64,
}

#[derive(Clone)]
pub struct Rooms {
    pool: AnyPool,
}

type Row = (String, Option<i64>, String, i64, i64);

fn decode((version, current_state, latest, max_depth, last_stream_ordering): Row) -> anyhow::Result<Room> {
    Ok(Room {
        room_version: version.try_into()?,
        current_state,
        latest_event_ids: serde_json::from_str(&latest)?,
        max_depth,
        last_stream_ordering,
    })
}

const SELECT: &str = "SELECT room_version, current_state, latest_event_ids, max_depth, last_stream_ordering
     FROM roomserver_rooms WHERE room_id = $1";

impl Rooms {
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    pub async fn get(&self, room_id: &RoomId) -> anyhow::Result<Option<Room>> {
        sqlx::query_as::<_, Row>(SELECT)
            .bind(room_id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(decode)
            .transpose()
    }

    /// Records a room the first time one of its events is seen.
    pub async fn create(
        &self,
        tx: &mut AnyConnection,
        room_id: &RoomId,
        version: &RoomVersionId,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO roomserver_rooms (room_id, room_version, current_state, latest_event_ids, max_depth,
                 last_stream_ordering) VALUES ($1, $2, NULL, '[]', 0, 0) ON CONFLICT (room_id) DO NOTHING",
        )
        .bind(room_id.as_str())
        .bind(version.as_str())
        .execute(tx)
        .await?;
        Ok(())
    }

    pub async fn update(&self, tx: &mut AnyConnection, room_id: &RoomId, room: &Room) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE roomserver_rooms SET current_state = $1, latest_event_ids = $2, max_depth = $3,
                 last_stream_ordering = $4 WHERE room_id = $5",
        )
        .bind(room.current_state)
        .bind(serde_json::to_string(&room.latest_event_ids)?)
        .bind(room.max_depth)
        .bind(room.last_stream_ordering)
        .bind(room_id.as_str())
        .execute(tx)
        .await?;
        Ok(())
    }
}
