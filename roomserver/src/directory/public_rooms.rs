//! `roomserver_published_rooms` and the pages of the public room directory,
//! read from the projection's summaries: largest rooms first, then by room id,
//! paged by keyset so a page costs the same however large the rooms' history.

use common::{
    Runtime,
    api::roomserver::{
        QueryPublicRooms, QueryPublicRoomsRequest, QueryPublicRoomsResponse, QueryRoomVersion, QueryRoomVersionRequest,
        QueryRoomVisibility, QueryRoomVisibilityResponse, SetRoomVisibility, SetRoomVisibilityRequest,
    },
    bus::{RemoteError, RemoteErrorKind, RpcError, serve},
    storage::{Db, now_ms},
};
use serde_json::{Map, Value, json};
use sqlx::AssertSqlSafe;

/// The most rooms one page may hold.
const MAX_LIMIT: u32 = 500;

pub fn start(rt: &Runtime, db: Db) {
    let (bus, shutdown) = (rt.bus.clone(), rt.shutdown.clone());
    rt.spawn("roomserver set_room_visibility", {
        let db = db.clone();
        serve::<SetRoomVisibility, _, _>(bus.clone(), shutdown.clone(), move |request| {
            let db = db.clone();
            async move { set_visibility(&db, request).await }
        })
    });
    rt.spawn("roomserver query_room_visibility", {
        let (db, rt) = (db.clone(), rt.clone());
        serve::<QueryRoomVisibility, _, _>(bus.clone(), shutdown.clone(), move |request| {
            let (db, rt) = (db.clone(), rt.clone());
            async move { visibility(&rt, &db, request).await }
        })
    });
    rt.spawn(
        "roomserver query_public_rooms",
        serve::<QueryPublicRooms, _, _>(bus, shutdown, move |request| {
            let db = db.clone();
            async move { public_rooms(&db, request).await }
        }),
    );
}

async fn set_visibility(db: &Db, request: SetRoomVisibilityRequest) -> Result<(), RemoteError> {
    let query = if request.public {
        sqlx::query(
            "INSERT INTO roomserver_published_rooms (room_id, published_ts) VALUES ($1, $2)
             ON CONFLICT (room_id) DO NOTHING",
        )
        .bind(request.room_id.as_str())
        .bind(now_ms())
    } else {
        sqlx::query("DELETE FROM roomserver_published_rooms WHERE room_id = $1").bind(request.room_id.as_str())
    };
    query.execute(db.pool()).await?;
    Ok(())
}

async fn visibility(
    rt: &Runtime,
    db: &Db,
    request: QueryRoomVersionRequest,
) -> Result<QueryRoomVisibilityResponse, RemoteError> {
    let (published, projected): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM roomserver_published_rooms WHERE room_id = $1),
                (SELECT COUNT(*) FROM roomserver_directory_rooms WHERE room_id = $1)",
    )
    .bind(request.room_id.as_str())
    .fetch_one(db.pool())
    .await?;
    if published > 0 {
        return Ok(QueryRoomVisibilityResponse { public: true });
    }
    if projected == 0 {
        // The projection trails the room's creation; the room's own record decides.
        match rt.bus.call::<QueryRoomVersion>(&request).await {
            Ok(_) => {}
            Err(RpcError::Remote(e)) => return Err(e),
            Err(e) => return Err(anyhow::Error::from(e).into()),
        }
    }
    Ok(QueryRoomVisibilityResponse { public: false })
}

/// Where a page starts: after (`forward`) or before the room with this key.
#[derive(Debug, PartialEq, Eq)]
struct Since {
    forward: bool,
    joined: i64,
    room_id: String,
}

impl Since {
    fn encode(&self) -> String {
        let hex: String = self.room_id.bytes().map(|b| format!("{b:02x}")).collect();
        format!("{}{}_{hex}", if self.forward { 'n' } else { 'p' }, self.joined)
    }

    fn decode(token: &str) -> Option<Since> {
        let forward = match token.chars().next()? {
            'n' => true,
            'p' => false,
            _ => return None,
        };
        let (joined, hex) = token[1..].split_once('_')?;
        if hex.len() % 2 != 0 || !hex.is_ascii() {
            return None;
        }
        let bytes =
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect::<Option<_>>()?;
        Some(Since { forward, joined: joined.parse().ok()?, room_id: String::from_utf8(bytes).ok()? })
    }
}

type Row = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    i64,
    Option<String>,
    i64,
);

/// A parameter of the page query, which is built to fit the filter.
enum Bind {
    Text(String),
    Int(i64),
}

/// Escapes `LIKE`'s wildcards (with `\`, the query's ESCAPE character).
fn like_pattern(term: &str) -> String {
    let mut pattern = String::from("%");
    for c in term.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

async fn public_rooms(db: &Db, request: QueryPublicRoomsRequest) -> Result<QueryPublicRoomsResponse, RemoteError> {
    let since = match &request.since {
        Some(token) => Some(
            Since::decode(token)
                .ok_or_else(|| RemoteError::new(RemoteErrorKind::BadRequest, "Unknown pagination token"))?,
        ),
        None => None,
    };
    let limit = request.limit.clamp(1, MAX_LIMIT) as usize;

    // Listed: published rooms that anyone may join, knock on or read, with someone in them.
    let mut filter = String::from(
        "FROM roomserver_published_rooms p JOIN roomserver_directory_rooms r ON r.room_id = p.room_id
         WHERE r.num_joined_members > 0
           AND (r.join_rule IN ('public', 'knock', 'knock_restricted') OR r.world_readable = 1)",
    );
    let mut binds: Vec<Bind> = Vec::new();
    let bind = |value: Bind, binds: &mut Vec<Bind>| {
        binds.push(value);
        format!("${}", binds.len())
    };
    if let Some(term) = request.generic_search_term.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        let placeholder = bind(Bind::Text(like_pattern(term)), &mut binds);
        filter.push_str(&format!(" AND r.search_text LIKE {placeholder} ESCAPE '\\'"));
    }
    if !request.room_types.is_empty() {
        let mut alternatives = Vec::new();
        let named: Vec<String> = request.room_types.iter().flatten().cloned().collect();
        if !named.is_empty() {
            let placeholders: Vec<String> = named.into_iter().map(|t| bind(Bind::Text(t), &mut binds)).collect();
            alternatives.push(format!("r.room_type IN ({})", placeholders.join(", ")));
        }
        if request.room_types.iter().any(Option::is_none) {
            alternatives.push("r.room_type IS NULL".to_owned());
        }
        filter.push_str(&format!(" AND ({})", alternatives.join(" OR ")));
    }

    let total: i64 = {
        let mut query = sqlx::query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) {filter}")));
        for value in &binds {
            query = match value {
                Bind::Text(text) => query.bind(text.clone()),
                Bind::Int(number) => query.bind(*number),
            };
        }
        query.fetch_one(db.pool()).await?
    };

    let forward = since.as_ref().is_none_or(|s| s.forward);
    let mut page_filter = filter;
    if let Some(since) = &since {
        let joined = bind(Bind::Int(since.joined), &mut binds);
        let room = bind(Bind::Text(since.room_id.clone()), &mut binds);
        let (fewer, earlier) = if forward { ("<", ">") } else { (">", "<") };
        page_filter.push_str(&format!(
            " AND (r.num_joined_members {fewer} {joined} OR (r.num_joined_members = {joined} AND r.room_id {earlier} {room}))"
        ));
    }
    let order =
        if forward { "r.num_joined_members DESC, r.room_id ASC" } else { "r.num_joined_members ASC, r.room_id DESC" };
    let sql = format!(
        "SELECT r.room_id, r.name, r.topic, r.avatar_url, r.canonical_alias, r.join_rule, r.guest_can_join,
                r.world_readable, r.room_type, r.num_joined_members
         {page_filter} ORDER BY {order} LIMIT {}",
        limit + 1
    );
    let mut query = sqlx::query_as::<_, Row>(AssertSqlSafe(sql));
    for value in &binds {
        query = match value {
            Bind::Text(text) => query.bind(text.clone()),
            Bind::Int(number) => query.bind(*number),
        };
    }
    let mut rows = query.fetch_all(db.pool()).await?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    if !forward {
        rows.reverse();
    }

    let key = |row: &Row, forward: bool| Since { forward, joined: row.9, room_id: row.0.clone() }.encode();
    let (next_batch, prev_batch) = match (rows.first(), rows.last()) {
        (Some(first), Some(last)) => {
            // Going forward there is more after when the query found it; going
            // back, the page we came from is after.
            let next = (if forward { more } else { true }).then(|| key(last, true));
            let prev = (if forward { since.is_some() } else { more }).then(|| key(first, false));
            (next, prev)
        }
        _ => (None, None),
    };
    Ok(QueryPublicRoomsResponse {
        chunk: rows.into_iter().map(chunk).collect(),
        next_batch,
        prev_batch,
        total_room_count_estimate: total.max(0) as u64,
    })
}

/// A `PublicRoomsChunk` as the client-server API defines it.
fn chunk(row: Row) -> Value {
    let (
        room_id,
        name,
        topic,
        avatar_url,
        canonical_alias,
        join_rule,
        guest_can_join,
        world_readable,
        room_type,
        joined,
    ) = row;
    let mut chunk = Map::new();
    chunk.insert("room_id".into(), json!(room_id));
    chunk.insert("num_joined_members".into(), json!(joined));
    chunk.insert("world_readable".into(), json!(world_readable != 0));
    chunk.insert("guest_can_join".into(), json!(guest_can_join != 0));
    chunk.insert("join_rule".into(), json!(join_rule.unwrap_or_else(|| "public".into())));
    for (field, value) in [
        ("name", name),
        ("topic", topic),
        ("avatar_url", avatar_url),
        ("canonical_alias", canonical_alias),
        ("room_type", room_type),
    ] {
        if let Some(value) = value {
            chunk.insert(field.into(), json!(value));
        }
    }
    Value::Object(chunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_tokens_round_trip() {
        let since = Since { forward: false, joined: 42, room_id: "!abc:example.org".into() };
        assert_eq!(Since::decode(&since.encode()), Some(since));
        assert_eq!(Since::decode("x1_00"), None);
        assert_eq!(Since::decode("n1_0"), None);
        assert_eq!(Since::decode("nx_00"), None);
        assert_eq!(Since::decode(""), None);
        assert_eq!(Since::decode("né_00"), None);
    }

    #[test]
    fn search_terms_match_literally() {
        assert_eq!(like_pattern("50%_Off\\"), "%50\\%\\_off\\\\%");
    }
}
