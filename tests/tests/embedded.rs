//! The embedded default: `homeserver generate-config` then `homeserver run`,
//! with its own nats-server; SIGTERM stops it cleanly; bad configs exit 2.

use std::process::Command;

use tests::{Deployment, Mode, Options, bin_dir};

#[tokio::test]
async fn generate_config_then_run_with_its_own_nats() {
    let mut deployment = Deployment::start_with(Options { embedded_nats: true, ..Options::new(Mode::Monolith) }).await;
    let versions = reqwest::get(deployment.url("/_matrix/client/versions")).await.unwrap();
    assert_eq!(versions.status(), 200);
    let store = deployment.data_dir.join("nats");
    assert!(store.join("jetstream").is_dir(), "JetStream keeps its data under the data directory");

    let status = deployment.terminate_monolith().await;
    assert!(status.success(), "SIGTERM ends homeserver run cleanly: {status}");
    let children = Command::new("pgrep").args(["-f", &store.display().to_string()]).output().unwrap();
    assert!(children.stdout.is_empty(), "the nats-server child is stopped with it");
}

#[test]
fn invalid_config_exits_2_naming_the_field() {
    let dir = std::env::temp_dir().join(format!("hs-badconfig-{:x}", rand::random::<u64>()));
    let generated = Command::new(bin_dir().join("homeserver"))
        .args(["generate-config", "--server-name", "bad.test", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(generated.status.success());
    let text = String::from_utf8(generated.stdout).unwrap();
    let cases = [
        (text.replace("input_partitions: 8", "input_partitions: lots"), "global.nats.input_partitions"),
        (text.replace("stream_prefix: ", "stream_prefix: bad.prefix"), "global.nats.stream_prefix"),
        (text.replace("client_listen: 127.0.0.1:8008", "client_listen: nowhere"), "global.client_listen"),
        (format!("{text}\nunknown_section: {{}}\n"), "unknown_section"),
    ];
    for (i, (config, field)) in cases.iter().enumerate() {
        let path = dir.join(format!("bad{i}.yaml"));
        std::fs::write(&path, config).unwrap();
        for binary in ["homeserver", "roomserver"] {
            let mut command = Command::new(bin_dir().join(binary));
            if binary == "homeserver" {
                command.arg("run");
            }
            let output = command.arg("--config").arg(&path).output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{binary} with bad {field}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "one clear message: {stderr}");
            assert!(stderr.contains(field), "{binary}: {field} is named in: {stderr}");
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}
