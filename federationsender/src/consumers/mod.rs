//! What federationsender reads: `OutputRoomEvent`, in stream order (one
//! batched durable, its lease holder applies it), so each destination's
//! queue is in the order the roomserver decided.

pub mod room_events;
