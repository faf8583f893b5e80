//! Where other servers reach us: with `--tls-cert`/`--tls-key` the federation
//! listener serves HTTPS (rustls in the monolith, nginx in the polylith) with
//! a certificate a client verifies against its CA, and no plain HTTP, while
//! the client API stays plain HTTP on its own address; one address given to
//! both APIs serves both over HTTPS, with the client's address still known
//! to the rate limits. generate-config refuses TLS flags it cannot use, with
//! exit status 2 and a line naming the flag or field, before writing anything.
//! Its listen flags take host names (`localhost:8448`, as SyTest passes
//! them), resolved into the config; one that does not resolve is exit 2.

use std::process::Command;

use serde_json::Value;
use tests::{Deployment, Mode, Options, bin_dir, tls::TestCa};

async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e:#}"));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// GETs `url` over plain HTTP, which a TLS listener must not serve: the
/// connection fails (rustls) or the answer is an error (nginx says 400).
async fn plain_http_is_refused(url: &str) {
    match reqwest::Client::new().get(url).send().await {
        Err(_) => {}
        Ok(response) => assert!(!response.status().is_success(), "{url} answered plain HTTP: {response:?}"),
    }
}

async fn federation_listener_serves_https(mode: Mode) {
    let ca = TestCa::new("federation test CA");
    let deployment = Deployment::start_with(Options::new(mode).federating(&ca)).await;
    let port = deployment.federation_url.rsplit(':').next().unwrap().to_owned();
    assert_eq!(deployment.server_name, format!("localhost:{port}"));
    let keys = format!("{}/_matrix/key/v2/server", deployment.federation_url);

    let (status, body) = get_json(&deployment.federation_client(), &keys).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["server_name"], deployment.server_name.as_str(), "{body}");

    let untrusting = reqwest::Client::new().get(&keys).send().await;
    assert!(untrusting.is_err(), "a client without the test CA got an answer: {untrusting:?}");
    plain_http_is_refused(&format!("http://localhost:{port}/_matrix/key/v2/server")).await;

    assert!(deployment.base_url.starts_with("http://"), "{}", deployment.base_url);
    let (status, body) = get_json(&reqwest::Client::new(), &deployment.url("/_matrix/client/versions")).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn monolith_federation_listener_serves_https() {
    federation_listener_serves_https(Mode::Monolith).await;
}

#[tokio::test]
async fn polylith_federation_listener_serves_https() {
    federation_listener_serves_https(Mode::Polylith).await;
}

async fn shared_listener_serves_both_apis_over_https(mode: Mode) {
    let ca = TestCa::new("federation test CA");
    // A burst of two, then refusal: only a limiter that knows the client's
    // address ever refuses.
    let options = Options::new(mode)
        .federating(&ca)
        .shared_listener()
        .set("global.rate_limits", "{enabled: true, per_second: 0.001, burst: 2}");
    let deployment = Deployment::start_with(options).await;
    let port = deployment.federation_url.rsplit(':').next().unwrap();
    assert_eq!(deployment.base_url, format!("https://127.0.0.1:{port}"));
    let client = deployment.federation_client();

    let (status, body) = get_json(&client, &deployment.url("/_matrix/client/versions")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["versions"].as_array().is_some_and(|v| !v.is_empty()), "{body}");
    let (status, body) = get_json(&client, &format!("{}/_matrix/key/v2/server", deployment.federation_url)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["server_name"], deployment.server_name.as_str(), "{body}");
    plain_http_is_refused(&format!("http://127.0.0.1:{port}/_matrix/client/versions")).await;

    // Each clientapi instance has its own limiter: the polylith's two allow
    // four in all.
    let available = deployment.url("/_matrix/client/v3/register/available?username=nobody");
    let mut answers = Vec::new();
    for _ in 0..8 {
        let (status, body) = get_json(&client, &available).await;
        answers.push((status, body["errcode"].as_str().unwrap_or_default().to_owned()));
    }
    assert_eq!(answers[0].0, 200, "{answers:?}");
    assert!(answers.contains(&(429, "M_LIMIT_EXCEEDED".to_owned())), "{answers:?}");
}

#[tokio::test]
async fn monolith_shared_listener_serves_both_apis_over_https() {
    shared_listener_serves_both_apis_over_https(Mode::Monolith).await;
}

#[tokio::test]
async fn polylith_shared_listener_serves_both_apis_over_https() {
    shared_listener_serves_both_apis_over_https(Mode::Polylith).await;
}

/// Runs `homeserver generate-config` in a fresh directory holding a
/// certificate and key from a test CA (`tls-cert.pem`, `tls-key.pem`), with
/// `flags` after the required ones, and returns the directory, the exit
/// status, stdout and stderr.
fn generate_config(flags: &[&str]) -> (tempdir::Dir, Option<i32>, String, String) {
    let dir = tempdir::Dir::new();
    let pem = TestCa::new("generate-config test CA").issue_pem(&["localhost"]);
    std::fs::write(dir.path.join("tls-cert.pem"), pem.chain).unwrap();
    std::fs::write(dir.path.join("tls-key.pem"), pem.key).unwrap();
    let output = Command::new(bin_dir().join("homeserver"))
        .current_dir(&dir.path)
        .args(["generate-config", "--server-name", "example.org", "--data-dir", "data"])
        .args(flags)
        .output()
        .expect("homeserver runs");
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (dir, output.status.code(), text(output.stdout), text(output.stderr))
}

#[test]
fn generate_config_resolves_host_names_in_listen_flags() {
    let flags = ["--client-listen", "localhost:18008", "--federation-listen", "localhost:18448"];
    let (_dir, code, stdout, stderr) = generate_config(&flags);
    assert_eq!(code, Some(0), "{stderr}");
    let config: serde_yaml::Value = serde_yaml::from_str(&stdout).unwrap();
    assert_eq!(config["global"]["client_listen"].as_str(), Some("127.0.0.1:18008"), "{stdout}");
    assert_eq!(config["global"]["federation_listen"].as_str(), Some("127.0.0.1:18448"), "{stdout}");

    // Addresses still mean what they did.
    let (_dir, code, stdout, stderr) = generate_config(&["--client-listen", "0.0.0.0:8008"]);
    assert_eq!(code, Some(0), "{stderr}");
    let config: serde_yaml::Value = serde_yaml::from_str(&stdout).unwrap();
    assert_eq!(config["global"]["client_listen"].as_str(), Some("0.0.0.0:8008"), "{stdout}");

    for bad in ["no-such-host.invalid:8008", "localhost"] {
        let (dir, code, _, stderr) = generate_config(&["--federation-listen", bad]);
        assert_eq!(code, Some(2), "{bad}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("--federation-listen:"), "{stderr}");
        assert!(!dir.path.join("data").exists(), "nothing is written for a refused flag");
    }
}

#[test]
fn generate_config_refuses_unusable_tls_flags() {
    let (dir, code, _, stderr) = generate_config(&["--tls-cert", "tls-cert.pem"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("--tls-key:"), "{stderr}");
    assert!(!dir.path.join("data").exists(), "nothing is written for a refused flag");

    // A certificate where the key should be.
    let (dir, code, _, stderr) = generate_config(&["--tls-cert", "tls-cert.pem", "--tls-key", "tls-cert.pem"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("global.tls_private_key_path"), "{stderr}");
    assert!(!dir.path.join("data").exists(), "nothing is written for a refused flag");
}

#[test]
fn generate_config_writes_absolute_tls_and_ca_paths() {
    let flags = ["--tls-cert", "tls-cert.pem", "--tls-key", "tls-key.pem", "--federation-ca", "tls-cert.pem"];
    let (dir, code, stdout, stderr) = generate_config(&flags);
    assert_eq!(code, Some(0), "{stderr}");
    let config: serde_yaml::Value = serde_yaml::from_str(&stdout).unwrap();
    let global = &config["global"];
    let path = |name: &str| dir.path.join(name).display().to_string();
    assert_eq!(global["tls_certificate_path"].as_str(), Some(path("tls-cert.pem").as_str()), "{stdout}");
    assert_eq!(global["tls_private_key_path"].as_str(), Some(path("tls-key.pem").as_str()), "{stdout}");
    assert_eq!(global["outbound_trusted_ca_files"][0].as_str(), Some(path("tls-cert.pem").as_str()), "{stdout}");
}

/// A directory of its own under the system's temporary one, removed on drop.
mod tempdir {
    use std::path::PathBuf;

    pub struct Dir {
        pub path: PathBuf,
    }

    impl Dir {
        pub fn new() -> Dir {
            let path = std::env::temp_dir().join(format!("hs-test-generate-{:016x}", rand::random::<u64>()));
            std::fs::create_dir_all(&path).unwrap();
            // Absolute without symlinks, as generate-config resolves the
            // relative paths it is given against its working directory.
            Dir { path: std::fs::canonicalize(path).unwrap() }
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
