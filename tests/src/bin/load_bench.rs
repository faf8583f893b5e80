//! A load generator, not a test: it registers its own users and prints figures
//! for any homeserver — ours or another (Synapse) — so they can be compared
//! side by side. It asserts nothing about timing.
//!
//! Figures, one line each:
//! - sends (`PUT /rooms/{id}/send/m.room.message/{txn}`), each sender in a
//!   closed loop (its next request when the previous one is answered), for
//!   1 sender in 1 room, 16 senders in 1 room and 16 senders in 16 rooms:
//!   msg/s (200s answered in the measured window), p50/p99 latency of those,
//!   and the non-200 answers (and transport errors); then how long after the
//!   load a new send shows in `/messages` (on ours: how far the sync side's
//!   projection lags behind), and the msg/s sent and readable by then;
//! - long-poll wake latency: B long-polls `/sync?since=…&timeout=30000` in a
//!   room with A, A sends; from A's send answered 200 until B's sync returns
//!   with the message (and also from just before A sent); wakes over a second
//!   are detailed on stderr;
//! - initial sync (`GET /sync`, no since) of an account in many rooms, once
//!   `/messages` shows the last of their messages;
//! - the resident memory (VmRSS) of the server's processes, before, after and
//!   at their peak (VmHWM), when they are known; the machine's load average;
//! - 5xx answers and requests without an answer over the whole run. When our
//!   own deployment saw any, or a scenario failed, its logs are copied to
//!   `$TMPDIR/load_bench-<run>-logs` before it is torn down.
//!
//! Target:
//! - `BENCH_URL=http://host:port`: a homeserver already running. Users register
//!   through `POST /_matrix/client/v3/register` (the `m.login.dummy` stage), or
//!   through `/_synapse/admin/v1/register` when `BENCH_REGISTRATION_SHARED_SECRET`
//!   is set. `BENCH_PID`: pids (comma or space separated) whose RSS, with their
//!   descendants', is the server's.
//! - otherwise our own deployment, started by the test harness:
//!   `BENCH_MODE=polylith|monolith` (default polylith), `TEST_DATABASE`,
//!   `HS_BIN_DIR` as for the tests; its processes' RSS is summed (NATS,
//!   Postgres and nginx are not counted).
//!
//! Other settings: `BENCH_SECONDS` (10, per send scenario), `BENCH_WARMUP`
//! (2 seconds, not measured), `BENCH_SENDERS` (16), `BENCH_WAKES` (50),
//! `BENCH_SYNC_ROOMS` (100), `BENCH_SYNC_EVENTS` (20 per room),
//! `BENCH_SYNC_REPEATS` (5), `BENCH_ONLY` (a comma-separated subset of
//! `send1,sendN,sendNxN,wake,initial`), `BENCH_VERBOSE` (every wake, and
//! the 200s per second of each send scenario, on stderr).
//!
//! `cargo build --workspace --bins --release && target/release/load_bench`

use std::{
    collections::{BTreeMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use futures::{StreamExt, stream};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use tests::{Deployment, Mode, Options, client::enc};

const PASSWORD: &str = "bench-password-0123456789";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Answers 5xx and requests that got no answer, over the whole run.
static SERVER_TROUBLE: AtomicU64 = AtomicU64::new(0);

/// The HTTP side: one reqwest client (a pool of keep-alive connections,
/// one per concurrent request) for every user.
#[derive(Clone)]
struct Http {
    client: reqwest::Client,
    base: String,
}

struct Answer {
    status: u16,
    body: Value,
}

impl Http {
    fn new(base: &str) -> Self {
        tests::tls::install_default_provider();
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(120))
            .build()
            .expect("a reqwest client");
        Self { client, base: base.trim_end_matches('/').to_owned() }
    }

    /// `path` under `/_matrix/client/v3` unless it starts with `/_`.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        let url = if path.starts_with("/_") {
            format!("{}{path}", self.base)
        } else {
            format!("{}/_matrix/client/v3{path}", self.base)
        };
        let mut request = self.client.request(method, url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            anyhow::Ok((status, response.bytes().await?))
        }
        .await;
        if !matches!(&answer, Ok((status, _)) if *status < 500) {
            SERVER_TROUBLE.fetch_add(1, Ordering::Relaxed);
        }
        let (status, bytes) = answer?;
        Ok(Answer { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) })
    }
}

#[derive(Clone)]
struct User {
    http: Http,
    token: String,
    user_id: String,
}

impl User {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> anyhow::Result<Answer> {
        self.http.call(method, path, Some(&self.token), body).await
    }

    /// A request that must answer 200; its body.
    async fn ok(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let answer = self.call(method.clone(), path, body.as_ref()).await?;
        if answer.status != 200 {
            bail!("{method} {path}: {} {}", answer.status, answer.body);
        }
        Ok(answer.body)
    }

    async fn create_room(&self, name: &str) -> anyhow::Result<String> {
        let body =
            self.ok(reqwest::Method::POST, "/createRoom", Some(json!({"name": name, "preset": "public_chat"}))).await?;
        Ok(body["room_id"].as_str().context("createRoom without room_id")?.to_owned())
    }

    async fn join(&self, room_id: &str) -> anyhow::Result<()> {
        self.ok(reqwest::Method::POST, &format!("/join/{}", enc(room_id)), Some(json!({}))).await?;
        Ok(())
    }

    async fn send(&self, room_id: &str, txn: &str, body: &str) -> anyhow::Result<Answer> {
        let path = format!("/rooms/{}/send/m.room.message/{}", enc(room_id), enc(txn));
        self.call(reqwest::Method::PUT, &path, Some(&json!({"msgtype": "m.text", "body": body}))).await
    }
}

/// Registers `localpart`: through Synapse's shared-secret admin API when a
/// secret is given, else through `/register` and its dummy stage.
async fn register(http: &Http, localpart: &str, shared_secret: Option<&str>) -> anyhow::Result<User> {
    let answer = match shared_secret {
        Some(secret) => {
            let nonce = http.call(reqwest::Method::GET, "/_synapse/admin/v1/register", None, None).await?;
            let nonce = nonce.body["nonce"].as_str().with_context(|| format!("no nonce: {}", nonce.body))?.to_owned();
            let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("any key length");
            mac.update(format!("{nonce}\0{localpart}\0{PASSWORD}\0notadmin").as_bytes());
            let body = json!({
                "nonce": nonce,
                "username": localpart,
                "password": PASSWORD,
                "admin": false,
                "mac": hex::encode(mac.finalize().into_bytes()),
            });
            http.call(reqwest::Method::POST, "/_synapse/admin/v1/register", None, Some(&body)).await?
        }
        None => {
            let mut body = json!({"username": localpart, "password": PASSWORD, "auth": {"type": "m.login.dummy"}});
            let mut answer = http.call(reqwest::Method::POST, "/register", None, Some(&body)).await?;
            // User-interactive auth: the first answer starts a session, the
            // dummy stage completes it.
            if answer.status == 401
                && let Some(session) = answer.body["session"].as_str()
            {
                body["auth"] = json!({"type": "m.login.dummy", "session": session});
                answer = http.call(reqwest::Method::POST, "/register", None, Some(&body)).await?;
            }
            answer
        }
    };
    if answer.status != 200 {
        bail!("registering {localpart}: {} {}", answer.status, answer.body);
    }
    Ok(User {
        http: http.clone(),
        token: answer.body["access_token"].as_str().context("no access_token")?.to_owned(),
        user_id: answer.body["user_id"].as_str().context("no user_id")?.to_owned(),
    })
}

// ---------------------------------------------------------------------------
// Memory of the server's processes.

/// Which processes are the server.
enum Processes {
    Unknown,
    /// `BENCH_PID`: these and their descendants.
    Pids(Vec<u32>),
    /// Our deployment: every process started with `--config <this path>`.
    ConfigPath(String),
}

fn proc_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|dir| dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid …; comm may contain spaces and parentheses.
    stat[stat.rfind(')')? + 1..].split_whitespace().nth(1)?.parse().ok()
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| line.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// The program's name: argv[0]'s last component (comm is cut at 15 bytes).
fn comm(pid: u32) -> String {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let argv0 = String::from_utf8_lossy(cmdline.split(|b| *b == 0).next().unwrap_or_default()).into_owned();
    match argv0.rsplit('/').next() {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|s| s.trim().to_owned()).unwrap_or_default(),
    }
}

impl Processes {
    fn pids(&self) -> Vec<u32> {
        match self {
            Processes::Unknown => Vec::new(),
            Processes::Pids(roots) => {
                let all: Vec<(u32, Option<u32>)> = proc_pids().into_iter().map(|p| (p, parent_of(p))).collect();
                let mut found: Vec<u32> = roots.clone();
                let mut i = 0;
                while i < found.len() {
                    let parent = found[i];
                    for (pid, ppid) in &all {
                        if *ppid == Some(parent) && !found.contains(pid) {
                            found.push(*pid);
                        }
                    }
                    i += 1;
                }
                found
            }
            Processes::ConfigPath(path) => proc_pids()
                .into_iter()
                .filter(|pid| {
                    std::fs::read(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|cmdline| cmdline.split(|b| *b == 0).any(|arg| arg == path.as_bytes()))
                })
                .collect(),
        }
    }

    /// "412 MiB in 8 processes (clientapi 2×, …)", or None when unknown.
    fn rss(&self, field: &str) -> Option<String> {
        let pids = self.pids();
        let mut total = 0;
        let mut by_name: BTreeMap<String, (usize, u64)> = BTreeMap::new();
        for pid in &pids {
            if let Some(kib) = status_kib(*pid, field) {
                total += kib;
                let entry = by_name.entry(comm(*pid)).or_default();
                entry.0 += 1;
                entry.1 += kib;
            }
        }
        if by_name.is_empty() {
            return None;
        }
        let count: usize = by_name.values().map(|(n, _)| n).sum();
        let parts: Vec<String> =
            by_name
                .iter()
                .map(|(name, (n, kib))| {
                    if *n > 1 {
                        format!("{name} {n}× {} MiB", kib / 1024)
                    } else {
                        format!("{name} {} MiB", kib / 1024)
                    }
                })
                .collect();
        let plural = if count == 1 { "" } else { "es" };
        Some(format!("{} MiB in {count} process{plural} ({})", total / 1024, parts.join(", ")))
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

// ---------------------------------------------------------------------------
// The scenarios.

struct Settings {
    warmup: Duration,
    seconds: Duration,
    run: String,
}

/// After a burst of sends: `user` sends one more message into `room_id`, and
/// this is how long after its 200 `/messages` (served from the sync side's
/// projection on ours) first shows it — how far reading lags behind writing.
/// Returns how long the send took and then, unless 60 s passed, the lag.
async fn read_lag(user: &User, room_id: &str, body: &str, txn: &str) -> anyhow::Result<(f64, Option<f64>)> {
    let sent = Instant::now();
    let answer = user.send(room_id, txn, body).await?;
    if answer.status != 200 {
        bail!("marker send: {} {}", answer.status, answer.body);
    }
    let answered = Instant::now();
    let took = ms(answered - sent);
    let path = format!("/rooms/{}/messages?dir=b&limit=1", enc(room_id));
    while answered.elapsed() < Duration::from_secs(60) {
        let page = user.call(reqwest::Method::GET, &path, None).await?;
        if page.status == 200 && page.body["chunk"][0]["content"]["body"] == body {
            return Ok((took, Some(ms(answered.elapsed()))));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok((took, None))
}

/// Each sender sends into its room in a closed loop; figures for the
/// answers that came within the measured window (after the warm-up).
async fn send_scenario(label: &str, senders: Vec<(User, String)>, settings: &Settings) {
    let (first_user, first_room) = senders[0].clone();
    let start = Instant::now();
    let measure_from = start + settings.warmup;
    let end = measure_from + settings.seconds;
    let warmup_errors = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, (user, room_id))| {
            let run = settings.run.clone();
            let warmup_errors = warmup_errors.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let (mut errors, mut statuses) = (0u64, BTreeMap::<String, u64>::new());
                let (mut n, mut accepted, mut seconds) = (0u64, 0u64, Vec::new());
                while Instant::now() < end {
                    n += 1;
                    let sent = Instant::now();
                    let answer = user.send(&room_id, &format!("{run}-{i}-{n}"), &format!("message {n}")).await;
                    let done = Instant::now();
                    let ok = matches!(&answer, Ok(a) if a.status == 200);
                    accepted += ok as u64;
                    if ok {
                        seconds.push((done - start).as_secs() as usize);
                    }
                    if done < measure_from {
                        if !ok {
                            warmup_errors.fetch_add(1, Ordering::Relaxed);
                        }
                    } else if done <= end {
                        if ok {
                            latencies.push(ms(done - sent));
                        } else {
                            errors += 1;
                            let key = match &answer {
                                Ok(a) => format!("{} {}", a.status, a.body["errcode"].as_str().unwrap_or("")),
                                Err(e) => format!("transport: {e}"),
                            };
                            *statuses.entry(key).or_default() += 1;
                        }
                    }
                    if answer.is_err() {
                        // Connection refused or reset: do not spin.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                (latencies, errors, statuses, accepted, seconds)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut statuses = BTreeMap::<String, u64>::new();
    let mut accepted = 0;
    let mut per_second = vec![0u64; (settings.warmup + settings.seconds).as_secs_f64().ceil() as usize + 1];
    for task in tasks {
        let (l, e, s, a, seconds) = task.await.expect("a sender task");
        accepted += a;
        for second in seconds {
            if let Some(count) = per_second.get_mut(second) {
                *count += 1;
            }
        }
        latencies.extend(l);
        errors += e;
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
    }
    latencies.sort_by(f64::total_cmp);
    let rate = latencies.len() as f64 / settings.seconds.as_secs_f64();
    let warmup_errors = warmup_errors.load(Ordering::Relaxed);
    let mut line = format!(
        "{label}: {rate:.0} msg/s, p50 {:.1} ms, p99 {:.1} ms, {errors} errors",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    if warmup_errors > 0 {
        line += &format!(" (+{warmup_errors} during warm-up)");
    }
    if !statuses.is_empty() {
        let parts: Vec<String> = statuses.iter().map(|(k, v)| format!("{v}× {k}")).collect();
        line += &format!(" [{}]", parts.join("; "));
    }
    println!("{line}");
    if std::env::var_os("BENCH_VERBOSE").is_some() {
        eprintln!("  (200s per second, warm-up included: {per_second:?})");
    }
    let marker = format!("marker {} {label}", settings.run);
    match read_lag(&first_user, &first_room, &marker, &format!("{}-marker-{}", settings.run, enc(label))).await {
        Ok((took, Some(lag))) => {
            // Every message sent since the start (warm-up too) is readable now.
            let through = (accepted + 1) as f64 / start.elapsed().as_secs_f64();
            println!(
                "{label}: right after the load a send took {took:.0} ms and /messages showed it {lag:.0} ms after its 200; {through:.0} msg/s sent and readable"
            )
        }
        Ok((took, None)) => {
            println!("{label}: right after the load a send took {took:.0} ms and /messages did not show it within 60 s")
        }
        Err(e) => println!("{label}: read lag not measured: {e:#}"),
    }
}

/// Whether a sync answer's timeline of `room_id` holds a message with `body`.
fn has_message(sync: &Value, room_id: &str, body: &str) -> bool {
    sync["rooms"]["join"][room_id]["timeline"]["events"]
        .as_array()
        .is_some_and(|events| events.iter().any(|e| e["content"]["body"] == body))
}

/// What a sync answer held, in brief: its non-empty sections.
fn summary(sync: &Value) -> String {
    let mut parts = Vec::new();
    for (key, value) in sync.as_object().into_iter().flatten() {
        match key.as_str() {
            "next_batch" => {}
            "rooms" => {
                for (kind, rooms) in value.as_object().into_iter().flatten() {
                    for (room, content) in rooms.as_object().into_iter().flatten() {
                        let sections: Vec<String> = content
                            .as_object()
                            .into_iter()
                            .flatten()
                            .filter(|(_, v)| v.as_object().is_none_or(|o| !o.is_empty()))
                            .map(|(k, v)| match v["events"].as_array() {
                                Some(events) => format!(
                                    "{k}[{}]",
                                    events
                                        .iter()
                                        .map(|e| e["type"].as_str().unwrap_or("?"))
                                        .collect::<Vec<_>>()
                                        .join(",")
                                ),
                                None => k.clone(),
                            })
                            .collect();
                        parts.push(format!("{kind} {room}: {}", sections.join(" ")));
                    }
                }
            }
            _ if value.as_object().is_some_and(|o| o.is_empty())
                || value.as_array().is_some_and(|a| a.is_empty())
                || value["events"].as_array().is_some_and(|a| a.is_empty()) => {}
            _ => parts.push(format!("{key}: {value}")),
        }
    }
    if parts.is_empty() { "nothing".into() } else { parts.join("; ") }
}

async fn catch_up(user: &User, since: &str) -> anyhow::Result<String> {
    let sync = user.ok(reqwest::Method::GET, &format!("/sync?since={}&timeout=0", enc(since)), None).await?;
    Ok(sync["next_batch"].as_str().context("no next_batch")?.to_owned())
}

/// B long-polls, A sends; how long after A's send B's sync returns with it.
async fn wake_scenario(a: &User, b: &User, wakes: usize, settings: &Settings) -> anyhow::Result<()> {
    let room_id = a.create_room("wake").await?;
    b.join(&room_id).await?;
    // B's sync must show the room before the first wake: on a server whose
    // sync side lags behind (after the send scenarios) that takes a while.
    let joined = Instant::now();
    let mut since = None::<String>;
    loop {
        let path = match &since {
            Some(since) => format!("/sync?since={}&timeout=10000", enc(since)),
            None => "/sync?timeout=0".to_owned(),
        };
        let sync = b.ok(reqwest::Method::GET, &path, None).await?;
        since = Some(sync["next_batch"].as_str().context("no next_batch")?.to_owned());
        if sync["rooms"]["join"][&room_id].is_object() {
            break;
        }
        if joined.elapsed() > Duration::from_secs(120) {
            bail!("B's sync did not show the room it joined within 120 s");
        }
    }
    eprintln!("  (B's sync showed the joined room {:.0} ms after the join's 200)", ms(joined.elapsed()));
    let mut since = since.expect("a sync token");
    let (mut from_200, mut from_start) = (Vec::new(), Vec::new());
    let (mut early_wakes, mut misses) = (0, 0);
    let verbose = std::env::var_os("BENCH_VERBOSE").is_some();
    for i in 0..wakes {
        since = catch_up(b, &since).await?;
        let body = format!("wake {} {i}", settings.run);
        let poller = {
            let (b, since, room_id, body) = (b.clone(), since.clone(), room_id.clone(), body.clone());
            tokio::spawn(async move {
                let mut since = since;
                let mut polls = 0;
                let mut early = Vec::new();
                loop {
                    polls += 1;
                    let path = format!("/sync?since={}&timeout=30000", enc(&since));
                    let sync = b.ok(reqwest::Method::GET, &path, None).await?;
                    let returned = Instant::now();
                    since = sync["next_batch"].as_str().context("no next_batch")?.to_owned();
                    if has_message(&sync, &room_id, &body) {
                        return anyhow::Ok((returned, since, polls, early));
                    }
                    early.push((returned, summary(&sync)));
                    if polls >= 20 {
                        bail!("20 long-polls returned without the message");
                    }
                }
            })
        };
        // Let the long-poll reach the server and park there.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let answer = a.send(&room_id, &format!("{}-wake-{i}", settings.run), &body).await?;
        let answered = Instant::now();
        if answer.status != 200 {
            bail!("wake send: {} {}", answer.status, answer.body);
        }
        match tokio::time::timeout(Duration::from_secs(60), poller).await {
            Ok(Ok(Ok((returned, next, polls, early)))) => {
                since = next;
                if polls > 1 {
                    early_wakes += 1;
                }
                // Signed: the sync may return before the send's answer does.
                let signed = |at: Instant, from: Instant| if at >= from { ms(at - from) } else { -ms(from - at) };
                from_200.push(signed(returned, answered));
                from_start.push(signed(returned, started));
                if verbose || signed(returned, answered) > 1000.0 {
                    eprintln!(
                        "  wake {i}: send took {:.1} ms, sync returned {:.1} ms after the 200, after {polls} polls",
                        ms(answered - started),
                        signed(returned, answered)
                    );
                    for (at, what) in early {
                        eprintln!(
                            "    a poll returned {:.1} ms after the 200 without it: {what}",
                            signed(at, answered)
                        );
                    }
                }
            }
            Ok(Ok(Err(e))) => bail!("wake {i}: {e:#}"),
            Ok(Err(e)) => bail!("wake {i}: {e}"),
            Err(_) => {
                misses += 1;
                eprintln!("wake {i}: no sync returned the message within 60 s");
            }
        }
    }
    from_200.sort_by(f64::total_cmp);
    from_start.sort_by(f64::total_cmp);
    println!(
        "long-poll wake, from the send's 200 until the sync returns: p50 {:.1} ms, p99 {:.1} ms ({} wakes)",
        percentile(&from_200, 0.5),
        percentile(&from_200, 0.99),
        from_200.len()
    );
    println!(
        "long-poll wake, from just before the send until the sync returns: p50 {:.1} ms, p99 {:.1} ms",
        percentile(&from_start, 0.5),
        percentile(&from_start, 0.99)
    );
    if early_wakes > 0 || misses > 0 {
        println!("  ({early_wakes} long-polls returned early without the message first, {misses} never returned it)");
    }
    Ok(())
}

async fn initial_sync_scenario(user: &User, rooms: usize, events: usize, repeats: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let filled: Vec<anyhow::Result<(f64, String)>> = stream::iter(0..rooms)
        .map(|i| {
            let user = user.clone();
            async move {
                let created = Instant::now();
                let room_id = user.create_room(&format!("sync room {i}")).await?;
                let create_ms = ms(created.elapsed());
                for n in 0..events {
                    let answer = user.send(&room_id, &format!("fill-{i}-{n}"), &format!("message {n}")).await?;
                    if answer.status != 200 {
                        bail!("fill send: {} {}", answer.status, answer.body);
                    }
                }
                Ok((create_ms, room_id))
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let filled = filled.into_iter().collect::<anyhow::Result<Vec<(f64, String)>>>()?;
    let mut creates: Vec<f64> = filled.iter().map(|(ms, _)| *ms).collect();
    creates.sort_by(f64::total_cmp);
    eprintln!(
        "  (filled {rooms} rooms with {events} messages each in {:.1?}, 8 at a time; createRoom p50 {:.0} ms)",
        started.elapsed(),
        percentile(&creates, 0.5)
    );
    // Time the sync, not a sync side still catching up with the fill.
    if let Some((_, room_id)) = filled.last() {
        match read_lag(user, room_id, "fill marker", "fill-marker").await? {
            (took, Some(lag)) => {
                eprintln!(
                    "  (right after the fill a send took {took:.0} ms and /messages showed it {lag:.0} ms after its 200)"
                )
            }
            (took, None) => {
                eprintln!("  (right after the fill a send took {took:.0} ms and /messages did not show it within 60 s)")
            }
        }
    }
    let mut times = Vec::new();
    let mut joined = Vec::new();
    for _ in 0..repeats {
        let started = Instant::now();
        let sync = user.ok(reqwest::Method::GET, "/sync", None).await?;
        times.push(ms(started.elapsed()));
        joined.push(sync["rooms"]["join"].as_object().map_or(0, |rooms| rooms.len()));
    }
    if joined.iter().any(|n| *n != rooms) {
        println!("initial sync: joined rooms per sync {joined:?}, not {rooms} each");
    }
    let joined = joined.last().copied().unwrap_or(0);
    let first = times[0];
    times.sort_by(f64::total_cmp);
    println!(
        "initial sync, {joined} rooms × {events} messages: p50 {:.0} ms, min {:.0} ms, first {first:.0} ms ({repeats} syncs)",
        percentile(&times, 0.5),
        times[0]
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let only: Option<HashSet<String>> =
        std::env::var("BENCH_ONLY").ok().map(|v| v.split(',').map(|s| s.trim().to_owned()).collect());
    let wanted = |name: &str| only.as_ref().is_none_or(|set| set.contains(name));
    let senders = env_usize("BENCH_SENDERS", 16);
    let settings = Settings {
        warmup: Duration::from_secs_f64(env_f64("BENCH_WARMUP", 2.0)),
        seconds: Duration::from_secs_f64(env_f64("BENCH_SECONDS", 10.0)),
        run: format!("{:08x}", rand::random::<u32>()),
    };

    // Keeps our own deployment alive until the end (and stops it when dropped).
    let mut _deployment = None;
    let (base_url, processes) = match std::env::var("BENCH_URL") {
        Ok(url) => {
            let pids: Vec<u32> = std::env::var("BENCH_PID")
                .unwrap_or_default()
                .split([',', ' '])
                .filter_map(|p| p.trim().parse().ok())
                .collect();
            println!("target: {url}");
            (url, if pids.is_empty() { Processes::Unknown } else { Processes::Pids(pids) })
        }
        Err(_) => {
            let mode = match std::env::var("BENCH_MODE").as_deref() {
                Ok("monolith") => Mode::Monolith,
                Ok("polylith") | Err(_) => Mode::Polylith,
                Ok(other) => bail!("BENCH_MODE must be monolith or polylith, not {other}"),
            };
            let database = std::env::var("TEST_DATABASE").unwrap_or_else(|_| "sqlite".into());
            let deployment =
                Deployment::start_with(Options::new(mode).set("global.rate_limits.enabled", "false")).await;
            println!("target: our {mode:?} on {database}, {}", deployment.base_url);
            let result =
                (deployment.base_url.clone(), Processes::ConfigPath(deployment.config_path.display().to_string()));
            _deployment = Some(deployment);
            result
        }
    };
    let shared_secret = std::env::var("BENCH_REGISTRATION_SHARED_SECRET").ok();
    println!(
        "settings: {} s per send scenario after {} s warm-up; latencies are of the 200s",
        settings.seconds.as_secs_f64(),
        settings.warmup.as_secs_f64()
    );
    if let Some(rss) = processes.rss("VmRSS:") {
        println!("server RSS before: {rss}");
    }
    let load_at_start = loadavg();

    let http = Http::new(&base_url);
    let needed = senders + 3;
    let started = Instant::now();
    let users: Vec<anyhow::Result<User>> = stream::iter(0..needed)
        .map(|i| {
            let (http, localpart, secret) = (http.clone(), format!("bench{}_{i}", settings.run), shared_secret.clone());
            async move { register(&http, &localpart, secret.as_deref()).await }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let users: Vec<User> = users.into_iter().collect::<anyhow::Result<_>>()?;
    eprintln!("  (registered {needed} users in {:.1?}, e.g. {})", started.elapsed(), users[0].user_id);
    let (sender_users, rest) = users.split_at(senders);
    let (wake_a, wake_b, sync_user) = (&rest[0], &rest[1], &rest[2]);

    // A scenario that fails is reported, and the others still run.
    let mut failures = 0;
    let mut report = |label: &str, result: anyhow::Result<()>| {
        if let Err(e) = result {
            println!("{label}: failed: {e:#}");
            failures += 1;
        }
    };
    if wanted("send1") {
        let result = async {
            let room_id = sender_users[0].create_room("one sender").await?;
            send_scenario("1 sender, 1 room", vec![(sender_users[0].clone(), room_id)], &settings).await;
            Ok(())
        };
        report("1 sender, 1 room", result.await);
    }
    if wanted("sendN") {
        let label = format!("{senders} senders, 1 room");
        let result = async {
            let room_id = sender_users[0].create_room("many senders").await?;
            for user in &sender_users[1..] {
                user.join(&room_id).await?;
            }
            let pairs = sender_users.iter().map(|u| (u.clone(), room_id.clone())).collect();
            send_scenario(&label, pairs, &settings).await;
            Ok(())
        };
        report(&label, result.await);
    }
    if wanted("sendNxN") {
        let label = format!("{senders} senders, {senders} rooms");
        let result = async {
            let mut pairs = Vec::new();
            for user in sender_users {
                pairs.push((user.clone(), user.create_room("own room").await?));
            }
            send_scenario(&label, pairs, &settings).await;
            Ok(())
        };
        report(&label, result.await);
    }
    if wanted("wake") {
        report("long-poll wake", wake_scenario(wake_a, wake_b, env_usize("BENCH_WAKES", 50), &settings).await);
    }
    if wanted("initial") {
        let result = initial_sync_scenario(
            sync_user,
            env_usize("BENCH_SYNC_ROOMS", 100),
            env_usize("BENCH_SYNC_EVENTS", 20),
            env_usize("BENCH_SYNC_REPEATS", 5).max(1),
        )
        .await;
        report("initial sync", result);
    }

    if let Some(rss) = processes.rss("VmRSS:") {
        println!("server RSS after: {rss}");
    }
    if let Some(peak) = processes.rss("VmHWM:") {
        println!("server RSS peak: {peak}");
    }
    // Other work on the machine skews every figure: say how busy it was.
    println!(
        "machine: load average (1 min) {} at the start, {} at the end, {} CPUs",
        load_at_start,
        loadavg(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let trouble = SERVER_TROUBLE.load(Ordering::Relaxed);
    if trouble > 0 {
        println!("server errors: {trouble} answers 5xx or no answer, over the whole run");
    }
    // Our deployment's files go when it stops: keep its logs when something went wrong.
    if let Some(deployment) = &_deployment
        && (trouble > 0 || failures > 0)
    {
        let keep = std::env::temp_dir().join(format!("load_bench-{}-logs", settings.run));
        std::fs::create_dir_all(&keep)?;
        for dir in [deployment.data_dir.clone(), deployment.data_dir.join("polylith")] {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if entry.file_name().to_string_lossy().ends_with(".log") {
                    std::fs::copy(entry.path(), keep.join(entry.file_name()))?;
                }
            }
        }
        println!("the deployment's logs are kept in {}", keep.display());
    }
    if failures > 0 {
        bail!("{failures} scenarios failed");
    }
    Ok(())
}
