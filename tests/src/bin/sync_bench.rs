//! A benchmark, not a test: one account in many rooms with many events each,
//! then figures for `/sync` — the initial sync's time, and p50/p99 latency of
//! incremental syncs with nothing new and with one new event.
//!
//! `cargo build --workspace --bins --release && target/release/sync_bench`
//! (`HS_BIN_DIR` as for the tests). Environment: `BENCH_ROOMS` (1000),
//! `BENCH_EVENTS` (100 per room), `BENCH_SYNCS` (200), `TEST_DATABASE`.

use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use serde_json::json;
use tests::{Deployment, Mode, Options};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let (rooms, events, syncs) = (env("BENCH_ROOMS", 1000), env("BENCH_EVENTS", 100), env("BENCH_SYNCS", 200));
    let deployment =
        Deployment::start_with(Options::new(Mode::Polylith).set("global.rate_limits.enabled", "false")).await;
    let user = deployment.new_user().await;
    println!("filling {rooms} rooms with {events} events each…");
    let started = Instant::now();
    let room_ids: Vec<String> = stream::iter(0..rooms)
        .map(|i| {
            let user = user.clone();
            async move {
                let room = user.post("/createRoom", json!({"name": format!("room {i}")})).await.expect(200);
                let room_id = room["room_id"].as_str().unwrap().to_owned();
                for n in 0..events {
                    let path = format!("/rooms/{room_id}/send/m.room.message/bench-{i}-{n}");
                    user.put(&path, json!({"msgtype": "m.text", "body": format!("message {n}")})).await.expect(200);
                }
                room_id
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    println!(
        "filled in {:.1?} ({:.0} events/s)",
        started.elapsed(),
        (rooms * (events + 6)) as f64 / started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let initial = user.get("/sync").await.expect(200);
    println!(
        "initial sync: {:.1?} for {} joined rooms",
        started.elapsed(),
        initial["rooms"]["join"].as_object().unwrap().len()
    );
    let mut since = initial["next_batch"].as_str().unwrap().to_owned();

    let mut quiet = Vec::with_capacity(syncs);
    for _ in 0..syncs {
        let started = Instant::now();
        let answer = user.get(&format!("/sync?since={since}&timeout=0")).await.expect(200);
        quiet.push(started.elapsed());
        since = answer["next_batch"].as_str().unwrap().to_owned();
    }
    quiet.sort();
    println!(
        "incremental sync, nothing new: p50 {:.2?}, p99 {:.2?}",
        percentile(&quiet, 0.5),
        percentile(&quiet, 0.99)
    );

    let mut one_event = Vec::with_capacity(syncs);
    for n in 0..syncs {
        let room_id = &room_ids[n % room_ids.len()];
        user.put(&format!("/rooms/{room_id}/send/m.room.message/after-{n}"), json!({"body": "new"})).await.expect(200);
        let started = Instant::now();
        let answer = user.get(&format!("/sync?since={since}&timeout=0")).await.expect(200);
        one_event.push(started.elapsed());
        since = answer["next_batch"].as_str().unwrap().to_owned();
    }
    one_event.sort();
    println!(
        "incremental sync, one new event: p50 {:.2?}, p99 {:.2?}",
        percentile(&one_event, 0.5),
        percentile(&one_event, 0.99)
    );
}
