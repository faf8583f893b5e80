//! Real client libraries in a room against the polylith: two users, a room,
//! an invite, a join, a message received through `/sync`, and history paged
//! back with `/messages` to the room's creation.
//!
//! - matrix-nio: `tests/clients/nio_rooms.py`, run by the Python named by
//!   `HS_PYTHON` (default `python3`) with tests/clients/requirements.txt.
//! - matrix-js-sdk: `tests/clients/jssdk_rooms.mjs`, run by `node` with the
//!   packages of tests/clients/package.json: `npm ci` in tests/clients, or
//!   `HS_NODE_MODULES` naming a node_modules directory installed from it.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use tests::{Deployment, Mode};

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients")
}

/// Runs `program args… BASE_URL` in `dir` and fails the test unless it exits 0.
async fn run_client(program: &str, args: &[&Path], dir: &Path, base_url: &str, hint: &str) {
    let child = tokio::process::Command::new(program)
        .args(args)
        .arg(base_url)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} ({hint}): {e}"));
    // The scripts bound themselves at 150s; this only guards against a hang.
    let output = tokio::time::timeout(Duration::from_secs(200), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} did not exit within 200s"))
        .expect("the client's output");
    assert!(
        output.status.success(),
        "{program} {args:?} failed ({}; {hint})\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

#[tokio::test]
async fn matrix_nio_creates_joins_sends_syncs_and_paginates() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let python = std::env::var("HS_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = clients_dir().join("nio_rooms.py");
    run_client(&python, &[&script], &clients_dir(), &deployment.base_url, "HS_PYTHON names a Python with matrix-nio")
        .await;
}

#[tokio::test]
async fn matrix_js_sdk_creates_joins_sends_syncs_and_paginates() {
    let script = clients_dir().join("jssdk_rooms.mjs");
    // ES modules find packages only in a node_modules beside or above the
    // script, so a node_modules elsewhere gets a directory of its own.
    let (dir, _keep) = match std::env::var_os("HS_NODE_MODULES") {
        Some(modules) => {
            let dir = std::env::temp_dir().join(format!("hs-jssdk-{:016x}", rand::random::<u64>()));
            std::fs::create_dir_all(&dir).expect("a scratch directory");
            std::os::unix::fs::symlink(&modules, dir.join("node_modules")).expect("a node_modules link");
            std::fs::copy(&script, dir.join("jssdk_rooms.mjs")).expect("the script copied");
            (dir.clone(), Some(RemoveOnDrop(dir)))
        }
        None => {
            assert!(
                clients_dir().join("node_modules/matrix-js-sdk").is_dir(),
                "matrix-js-sdk is not installed: run `npm ci` in tests/clients (or set HS_NODE_MODULES)"
            );
            (clients_dir(), None)
        }
    };
    let deployment = Deployment::start(Mode::Polylith).await;
    run_client(
        "node",
        &[Path::new("jssdk_rooms.mjs")],
        &dir,
        &deployment.base_url,
        "node 20 or newer, with tests/clients/package.json's packages",
    )
    .await;
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
