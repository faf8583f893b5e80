//! A real client library against the polylith: `tests/clients/nio_smoke.py`
//! drives matrix-nio through registration, a second login, devices, the
//! display name and account data. `HS_PYTHON` names a Python with matrix-nio
//! (tests/clients/requirements.txt) installed; default `python3`.

use std::{path::Path, process::Stdio, time::Duration};

use tests::{Deployment, Mode};

#[tokio::test]
async fn matrix_nio_registers_logs_in_and_manages_its_account() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is in the workspace");
    let python = std::env::var("HS_PYTHON").unwrap_or_else(|_| "python3".into());
    let child = tokio::process::Command::new(&python)
        .arg("tests/clients/nio_smoke.py")
        .arg(&deployment.base_url)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python} (HS_PYTHON): {e}"));
    // The script bounds itself at 120s; this only guards against a hang.
    let output = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
        .await
        .expect("nio_smoke.py did not exit within 180s")
        .expect("nio_smoke.py's output");
    assert!(
        output.status.success(),
        "nio_smoke.py failed ({}), with {python} (HS_PYTHON)\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}
