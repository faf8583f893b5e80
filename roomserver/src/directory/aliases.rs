//! `roomserver_room_aliases`: local alias → room, and who created the alias
//! (who may delete it besides the room's moderators).

use common::{
    Runtime,
    api::roomserver::{
        GetRoomAlias, GetRoomAliasRequest, GetRoomAliasResponse, QueryAliasesForRoom, QueryAliasesForRoomRequest,
        QueryAliasesForRoomResponse, RemoveRoomAlias, SetRoomAlias, SetRoomAliasRequest, SetRoomAliasResponse,
    },
    bus::{RemoteError, RemoteErrorKind, serve},
    storage::{Db, now_ms},
};

pub fn start(rt: &Runtime, db: Db) {
    let (bus, shutdown) = (rt.bus.clone(), rt.shutdown.clone());
    rt.spawn("roomserver set_room_alias", {
        let db = db.clone();
        serve::<SetRoomAlias, _, _>(bus.clone(), shutdown.clone(), move |request| {
            let db = db.clone();
            async move { set(&db, request).await }
        })
    });
    rt.spawn("roomserver get_room_alias", {
        let db = db.clone();
        serve::<GetRoomAlias, _, _>(bus.clone(), shutdown.clone(), move |request| {
            let db = db.clone();
            async move { get(&db, request).await }
        })
    });
    rt.spawn("roomserver remove_room_alias", {
        let db = db.clone();
        serve::<RemoveRoomAlias, _, _>(bus.clone(), shutdown.clone(), move |request| {
            let db = db.clone();
            async move { remove(&db, request).await }
        })
    });
    rt.spawn(
        "roomserver query_aliases_for_room",
        serve::<QueryAliasesForRoom, _, _>(bus, shutdown, move |request| {
            let db = db.clone();
            async move { for_room(&db, request).await }
        }),
    );
}

async fn set(db: &Db, request: SetRoomAliasRequest) -> Result<SetRoomAliasResponse, RemoteError> {
    let result = sqlx::query(
        "INSERT INTO roomserver_room_aliases (alias, room_id, creator, created_ts) VALUES ($1, $2, $3, $4)
         ON CONFLICT (alias) DO NOTHING",
    )
    .bind(request.alias.as_str())
    .bind(request.room_id.as_str())
    .bind(request.creator.as_str())
    .bind(now_ms())
    .execute(db.pool())
    .await?;
    Ok(SetRoomAliasResponse { created: result.rows_affected() == 1 })
}

fn parse_row(room_id: String, creator: String) -> Result<GetRoomAliasResponse, RemoteError> {
    let corrupt = |e: ruma::IdParseError| RemoteError::from(anyhow::Error::from(e).context("a stored alias row"));
    Ok(GetRoomAliasResponse {
        room_id: room_id.try_into().map_err(corrupt)?,
        creator: creator.try_into().map_err(corrupt)?,
    })
}

fn no_alias() -> RemoteError {
    RemoteError::new(RemoteErrorKind::NotFound, "Room alias not found")
}

async fn get(db: &Db, request: GetRoomAliasRequest) -> Result<GetRoomAliasResponse, RemoteError> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT room_id, creator FROM roomserver_room_aliases WHERE alias = $1")
            .bind(request.alias.as_str())
            .fetch_optional(db.pool())
            .await?;
    let (room_id, creator) = row.ok_or_else(no_alias)?;
    parse_row(room_id, creator)
}

async fn remove(db: &Db, request: GetRoomAliasRequest) -> Result<GetRoomAliasResponse, RemoteError> {
    // RETURNING makes a racing second removal see NotFound rather than both succeeding.
    let row: Option<(String, String)> =
        sqlx::query_as("DELETE FROM roomserver_room_aliases WHERE alias = $1 RETURNING room_id, creator")
            .bind(request.alias.as_str())
            .fetch_optional(db.pool())
            .await?;
    let (room_id, creator) = row.ok_or_else(no_alias)?;
    parse_row(room_id, creator)
}

async fn for_room(db: &Db, request: QueryAliasesForRoomRequest) -> Result<QueryAliasesForRoomResponse, RemoteError> {
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT alias FROM roomserver_room_aliases WHERE room_id = $1 ORDER BY alias")
            .bind(request.room_id.as_str())
            .fetch_all(db.pool())
            .await?;
    let aliases = rows
        .into_iter()
        .map(|alias| alias.try_into())
        .collect::<Result<_, _>>()
        .map_err(|e: ruma::IdParseError| RemoteError::from(anyhow::Error::from(e).context("a stored alias")))?;
    Ok(QueryAliasesForRoomResponse { aliases })
}
