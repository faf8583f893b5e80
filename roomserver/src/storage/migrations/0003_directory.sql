CREATE TABLE roomserver_room_aliases (
    alias TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    creator TEXT NOT NULL,
    created_ts BIGINT NOT NULL
);
CREATE INDEX roomserver_room_aliases_room ON roomserver_room_aliases (room_id);
CREATE TABLE roomserver_published_rooms (
    room_id TEXT PRIMARY KEY,
    published_ts BIGINT NOT NULL
);
CREATE TABLE roomserver_directory_state (
    room_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id TEXT NOT NULL,
    value TEXT,
    PRIMARY KEY (room_id, event_type, state_key)
);
CREATE INDEX roomserver_directory_state_event ON roomserver_directory_state (event_id);
CREATE INDEX roomserver_directory_state_value ON roomserver_directory_state (room_id, event_type, value);
CREATE TABLE roomserver_directory_rooms (
    room_id TEXT PRIMARY KEY,
    stream_ordering BIGINT NOT NULL,
    name TEXT,
    topic TEXT,
    avatar_url TEXT,
    canonical_alias TEXT,
    join_rule TEXT,
    guest_can_join BIGINT NOT NULL,
    world_readable BIGINT NOT NULL,
    room_type TEXT,
    num_joined_members BIGINT NOT NULL,
    search_text TEXT NOT NULL
);
CREATE INDEX roomserver_directory_rooms_size ON roomserver_directory_rooms (num_joined_members, room_id);
