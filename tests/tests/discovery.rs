//! `/versions`, the well-knowns and the server key, in both deployments.

use std::collections::BTreeMap;

use ruma::{CanonicalJsonObject, serde::Base64, signatures::PublicKeyMap};
use serde_json::Value;
use tests::{Deployment, Mode};

async fn get_json(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.expect("the request is answered");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

async fn versions_are_served(deployment: &Deployment) {
    for path in ["/_matrix/client/versions"] {
        let (status, body) = get_json(&deployment.url(path)).await;
        assert_eq!(status, 200, "{body}");
        let versions = body["versions"].as_array().expect("a versions list");
        assert!(versions.iter().any(|v| v == "v1.16"), "{body}");
        assert!(versions.iter().any(|v| v == "r0.6.1"), "legacy clients need r0: {body}");
    }
}

/// The key response is signed by the key it publishes, and valid for the configured period.
async fn server_key_verifies(deployment: &Deployment, base_url: &str) {
    let (status, body) = get_json(&format!("{base_url}/_matrix/key/v2/server")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["server_name"], deployment.server_name);
    let key = deployment.signing_key();
    let published = &body["verify_keys"][key.key_id()]["key"];
    assert_eq!(published.as_str(), Some(key.public_key().encode().as_str()), "{body}");

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let valid_until = body["valid_until_ts"].as_u64().expect("valid_until_ts");
    let validity = deployment.config.global.key_validity_hours * 3600 * 1000;
    assert!(valid_until > now + validity - 60_000 && valid_until <= now + validity + 60_000, "{body}");

    let object: CanonicalJsonObject = serde_json::from_value(body.clone()).unwrap();
    let mut keys = PublicKeyMap::new();
    keys.insert(
        deployment.server_name.clone(),
        BTreeMap::from([(key.key_id(), Base64::parse(published.as_str().unwrap()).unwrap())]),
    );
    ruma::signatures::verify_json(&keys, &object).expect("the key response's signature verifies");

    // A tampered response must not verify: the check above is not vacuous.
    let mut tampered = object.clone();
    tampered.insert("valid_until_ts".into(), ruma::CanonicalJsonValue::Integer(1u32.into()));
    assert!(ruma::signatures::verify_json(&keys, &tampered).is_err());
}

#[tokio::test]
async fn polylith_serves_versions_and_keys_through_nginx() {
    let deployment = Deployment::start(Mode::Polylith).await;
    versions_are_served(&deployment).await;
    server_key_verifies(&deployment, &deployment.base_url).await;
    server_key_verifies(&deployment, &deployment.federation_url).await;
    let (status, body) = get_json(&format!("{}/_matrix/federation/v1/version", deployment.federation_url)).await;
    assert_eq!(status, 200);
    assert_eq!(body["server"]["name"], "homeserver");

    // Each instance reports its own metrics and health; the public edge does not publish metrics.
    for instance in ["clientapi-1", "clientapi-2", "syncapi-1", "roomserver-1", "userapi-1"] {
        let url = deployment.instance_url(instance);
        assert_eq!(reqwest::get(format!("{url}/health")).await.unwrap().status(), 200, "{instance}");
        let metrics = reqwest::get(format!("{url}/metrics")).await.unwrap();
        assert_eq!(metrics.status(), 200, "{instance}");
    }
    let clientapi = deployment.instance_url("clientapi-1");
    let text = reqwest::get(format!("{clientapi}/metrics")).await.unwrap().text().await.unwrap();
    assert!(text.contains("http_requests_total"), "{text}");
    assert_eq!(reqwest::get(deployment.url("/metrics")).await.unwrap().status(), 403);
}

#[tokio::test]
async fn monolith_serves_versions_and_keys() {
    let deployment = Deployment::start(Mode::Monolith).await;
    versions_are_served(&deployment).await;
    server_key_verifies(&deployment, &deployment.federation_url).await;
    // Legacy and unstable prefixes are ruma's; the server key path with a key id is deprecated but served.
    let (status, _) = get_json(&format!("{}/_matrix/key/v2/server/ed25519:x", deployment.federation_url)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn notary_query_answers_for_our_own_server() {
    let deployment = Deployment::start(Mode::Monolith).await;
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/_matrix/key/v2/query", deployment.federation_url))
        .json(&serde_json::json!({ "server_keys": { deployment.server_name.clone(): {}, "elsewhere.test": {} } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let keys = body["server_keys"].as_array().expect("server_keys");
    assert_eq!(keys.len(), 1, "{body}");
    assert_eq!(keys[0]["server_name"], deployment.server_name);
}

#[tokio::test]
async fn well_known_is_a_clean_404_when_not_configured() {
    let deployment = Deployment::start(Mode::Monolith).await;
    for path in ["/.well-known/matrix/client", "/.well-known/matrix/server"] {
        let (status, body) = get_json(&deployment.url(path)).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["errcode"], "M_NOT_FOUND", "{path}: {body}");
    }
}
