//! federationsender makes every outbound server-server request and fetches
//! other servers' keys. Against a fake remote server over HTTPS (trusted
//! through `global.outbound_trusted_ca_files`): `QueryServerKeys` fetches a
//! server's keys once and answers from the cache after; a response with a
//! bad self-signature or another server's name is refused, and a key that
//! could not be had is not fetched again within the minute; old keys count
//! for times before their `expired_ts` only. `SendFederationRequest`
//! reaches the server with an X-Matrix signature it can verify against our
//! published key, and brings its status and body back as sent; with
//! `allow_private_outbound: false` the loopback server is never contacted.
//! Our notary endpoints serve another server's keys signed by it and by us,
//! also on the deprecated `/_matrix/key/v2/query/{serverName}/{keyId}`; a
//! key id they do not hold is fetched from its server then.

use std::{collections::BTreeMap, time::Duration};

use common::{
    api::federationsender::{
        FederationRequest, FederationResponse, QueryServerKeys, QueryServerKeysRequest, QueryServerKeysResponse,
        SendFederationRequest,
    },
    bus::{Bus, RemoteErrorKind, RpcError},
    keys::SigningKey,
};
use ruma::{
    CanonicalJsonObject, OwnedServerName, api::federation::authentication::XMatrix, serde::Base64,
    signatures::PublicKeyMap,
};
use serde_json::{Value, json, value::RawValue};
use tests::{
    Deployment, Mode, Options,
    client::Client,
    remote::{RemoteServer, now_ms},
    tls::TestCa,
};

/// Long enough for a fetch over loopback, however loaded the machine.
const PATIENCE: Duration = Duration::from_secs(30);

async fn deployment(ca: &TestCa, allow_private: bool) -> Deployment {
    let ca_files = format!("[{}]", ca.pem_path().display());
    let mut options = Options::new(Mode::Monolith).set("global.outbound_trusted_ca_files", &ca_files);
    if !allow_private {
        options = options.set("global.allow_private_outbound", "false");
    }
    Deployment::start_with(options).await
}

fn name(server: &str) -> OwnedServerName {
    OwnedServerName::try_from(server).expect("a server name")
}

async fn query_keys(
    bus: &Bus,
    server: &str,
    key_ids: &[&str],
    valid_at_ts: u64,
) -> Result<QueryServerKeysResponse, RpcError> {
    let request = QueryServerKeysRequest {
        server_name: name(server),
        key_ids: key_ids.iter().map(|id| id.to_string()).collect(),
        valid_at_ts,
    };
    bus.call_within::<QueryServerKeys>(&request, PATIENCE).await
}

fn expect_not_found(result: Result<QueryServerKeysResponse, RpcError>, what: &str) -> String {
    match result {
        Err(RpcError::Remote(e)) if e.kind == RemoteErrorKind::NotFound => e.message,
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

async fn send(
    bus: &Bus,
    destination: &str,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> Result<FederationResponse, RpcError> {
    let request = FederationRequest {
        destination: name(destination),
        method: method.to_owned(),
        uri: uri.to_owned(),
        body: body.map(|b| RawValue::from_string(b.to_string()).expect("JSON")),
        timeout_ms: None,
    };
    bus.call_within::<SendFederationRequest>(&request, PATIENCE).await
}

#[tokio::test]
async fn server_keys_are_fetched_checked_and_cached() {
    let ca = TestCa::new("federation keys CA");
    let deployment = deployment(&ca, true).await;
    let bus = deployment.bus().await;

    // A good server: fetched once, then answered from the cache.
    let good = RemoteServer::start(&ca).await;
    let key_id = good.key.key_id();
    let first = query_keys(&bus, &good.server_name, &[&key_id], now_ms()).await.expect("the key is fetched");
    assert_eq!(first.keys.get(&key_id), Some(&good.key.public_key()));
    assert_eq!(good.key_fetches(), 1);
    let again = query_keys(&bus, &good.server_name, &[&key_id], now_ms()).await.expect("the key is cached");
    assert_eq!(again.keys, first.keys);
    assert_eq!(good.key_fetches(), 1, "the second answer comes from the cache");

    // A response signed by a key it does not list is refused, and the key
    // is not fetched again for a while.
    let forged = RemoteServer::start(&ca).await;
    let impostor = SigningKey::generate();
    forged.serve_keys(RemoteServer::key_response(&forged.server_name, &forged.key, &[], &impostor));
    let forged_id = forged.key.key_id();
    let message = expect_not_found(query_keys(&bus, &forged.server_name, &[&forged_id], now_ms()).await, "forged");
    assert!(message.contains("signature"), "{message}");
    assert_eq!(forged.key_fetches(), 1);
    let message = expect_not_found(query_keys(&bus, &forged.server_name, &[&forged_id], now_ms()).await, "again");
    assert!(message.contains("a moment ago") && message.contains("signature"), "{message}");
    assert_eq!(forged.key_fetches(), 1, "a key missing a moment ago is not fetched again");

    // A response about another server is refused.
    let confused = RemoteServer::start(&ca).await;
    confused.serve_keys(RemoteServer::key_response("elsewhere.example", &confused.key, &[], &confused.key));
    let confused_id = confused.key.key_id();
    let message =
        expect_not_found(query_keys(&bus, &confused.server_name, &[&confused_id], now_ms()).await, "another name");
    assert!(message.contains("elsewhere.example"), "{message}");

    // An old key answers for times before it expired, and not after.
    let rotated = RemoteServer::start(&ca).await;
    let old_key = SigningKey::generate();
    let expired_ts = now_ms() - 3_600_000;
    rotated.serve_keys(RemoteServer::key_response(
        &rotated.server_name,
        &rotated.key,
        &[("ed25519:old", &old_key, expired_ts)],
        &rotated.key,
    ));
    let before = query_keys(&bus, &rotated.server_name, &["ed25519:old"], expired_ts - 1000).await.expect("before");
    assert_eq!(before.keys.get("ed25519:old"), Some(&old_key.public_key()));
    assert_eq!(rotated.key_fetches(), 1);
    expect_not_found(query_keys(&bus, &rotated.server_name, &["ed25519:old"], expired_ts + 1000).await, "after");
    // The current key of the same response is there too, without a fetch
    // (the one just made for the old key at a later time excepted).
    let fetches = rotated.key_fetches();
    let current = rotated.key.key_id();
    query_keys(&bus, &rotated.server_name, &[&current], now_ms()).await.expect("the current key");
    assert_eq!(rotated.key_fetches(), fetches);
}

#[tokio::test]
async fn requests_are_signed_and_answers_come_back_as_sent() {
    let ca = TestCa::new("federation requests CA");
    let deployment = deployment(&ca, true).await;
    let bus = deployment.bus().await;
    let remote = RemoteServer::start(&ca).await;
    let answer = json!({ "displayname": "Remote Person", "nested": { "quote": "\"é\"" } });
    remote.reply("/_matrix/federation/v1/query/profile", 200, answer.clone());
    remote.reply("/_matrix/federation/v1/send/txn1", 403, json!({ "errcode": "M_FORBIDDEN", "error": "no" }));

    let uri = "/_matrix/federation/v1/query/profile?user_id=%40someone%3Aexample.org&field=displayname";
    let got = send(&bus, &remote.server_name, "GET", uri, None).await.expect("an answer");
    assert_eq!(got.status, 200);
    assert_eq!(serde_json::from_str::<Value>(&got.body).unwrap(), answer);
    let put_body = json!({ "pdus": [], "edus": [{ "edu_type": "m.typing", "content": {} }] });
    let got = send(&bus, &remote.server_name, "PUT", "/_matrix/federation/v1/send/txn1", Some(put_body.clone()))
        .await
        .expect("an answer");
    assert_eq!(got.status, 403);
    assert_eq!(serde_json::from_str::<Value>(&got.body).unwrap()["errcode"], "M_FORBIDDEN");
    let got = send(&bus, &remote.server_name, "GET", "/_matrix/federation/v1/nothing", None).await.expect("a 404");
    assert_eq!(got.status, 404);
    assert_eq!(serde_json::from_str::<Value>(&got.body).unwrap()["errcode"], "M_UNRECOGNIZED");

    // Each request carries an X-Matrix signature by our published key, for
    // the fake's name, over what it received.
    let published = Client::new(&deployment.federation_url).get("/_matrix/key/v2/server").await.expect(200);
    let key_id = deployment.signing_key().key_id();
    let public_key = published["verify_keys"][&key_id]["key"].as_str().expect("our published key");
    let keys: PublicKeyMap = BTreeMap::from([(
        deployment.server_name.clone(),
        BTreeMap::from([(key_id.clone(), Base64::parse(public_key).unwrap())]),
    )]);
    let recorded = remote.recorded();
    assert_eq!(recorded.len(), 3, "{recorded:?}");
    assert_eq!(recorded[0].uri, uri, "the URI arrives as it was given");
    assert_eq!(serde_json::from_slice::<Value>(&recorded[1].body).unwrap(), put_body);
    for request in &recorded {
        let xmatrix = XMatrix::extract_from_http_headers(&request.headers).expect("an X-Matrix header");
        assert_eq!(xmatrix.origin.as_str(), deployment.server_name);
        assert_eq!(xmatrix.destination.as_deref().map(|d| d.as_str()), Some(remote.server_name.as_str()));
        assert_eq!(xmatrix.key.as_str(), key_id);
        xmatrix
            .verify_http_request(&request.http_request(), &name(&remote.server_name), &keys)
            .unwrap_or_else(|e| panic!("{} {}: {e}", request.method, request.uri));
        assert_eq!(request.headers["host"], remote.server_name.as_str(), "Host is the server name with its port");
    }
}

#[tokio::test]
async fn private_destinations_are_refused_unless_allowed() {
    let ca = TestCa::new("private outbound CA");
    let deployment = deployment(&ca, false).await;
    let bus = deployment.bus().await;
    let remote = RemoteServer::start(&ca).await;
    match send(&bus, &remote.server_name, "GET", "/_matrix/federation/v1/version", None).await {
        Err(RpcError::Remote(e)) if e.kind == RemoteErrorKind::Unreachable => {
            assert!(e.message.contains("private"), "{}", e.message)
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    let literal = remote.server_name.replace("localhost", "127.0.0.1");
    match send(&bus, &literal, "GET", "/_matrix/federation/v1/version", None).await {
        Err(RpcError::Remote(e)) if e.kind == RemoteErrorKind::Unreachable => {
            assert!(e.message.contains("private"), "{}", e.message)
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    let key_id = remote.key.key_id();
    expect_not_found(query_keys(&bus, &remote.server_name, &[&key_id], now_ms()).await, "keys of a private server");
    assert!(remote.recorded().is_empty());
    assert_eq!(remote.key_fetches(), 0);
}

/// Whether `object` carries a good signature by `server` with `key`.
fn signed_by(object: &CanonicalJsonObject, server: &str, key_id: &str, key: &Base64) {
    let mut alone = object.clone();
    let signatures = object["signatures"].as_object().expect("signatures");
    let theirs = signatures.get(server).unwrap_or_else(|| panic!("no signature by {server}: {signatures:?}"));
    alone.insert("signatures".into(), CanonicalJsonObject::from([(server.to_owned(), theirs.clone())]).into());
    let keys: PublicKeyMap = BTreeMap::from([(server.to_owned(), BTreeMap::from([(key_id.to_owned(), key.clone())]))]);
    ruma::signatures::verify_json(&keys, &alone).unwrap_or_else(|e| panic!("signature by {server}: {e}"));
}

#[tokio::test]
async fn notary_endpoints_serve_other_servers_keys_cosigned() {
    let ca = TestCa::new("notary CA");
    let deployment = deployment(&ca, true).await;
    let remote = RemoteServer::start(&ca).await;
    let federation = Client::new(&deployment.federation_url);
    let ours = deployment.signing_key();
    let check = |answer: &Value| {
        let entries = answer["server_keys"].as_array().expect("server_keys");
        let entry = entries.iter().find(|e| e["server_name"] == remote.server_name.as_str()).unwrap_or_else(|| {
            panic!("no entry for {}: {answer}", remote.server_name);
        });
        let object: CanonicalJsonObject = serde_json::from_value(entry.clone()).unwrap();
        signed_by(&object, &remote.server_name, &remote.key.key_id(), &remote.key.public_key());
        signed_by(&object, &deployment.server_name, &ours.key_id(), &ours.public_key());
        assert_eq!(entry["verify_keys"][remote.key.key_id()]["key"], remote.key.public_key().encode().as_str());
    };

    let path = format!("/_matrix/key/v2/query/{}", remote.server_name);
    check(&federation.get(&path).await.expect(200));
    assert_eq!(remote.key_fetches(), 1);
    let question = json!({ "server_keys": {
        remote.server_name.clone(): { remote.key.key_id(): {} },
        deployment.server_name.clone(): {},
    } });
    let answer = federation.post("/_matrix/key/v2/query", question).await.expect(200);
    check(&answer);
    assert_eq!(remote.key_fetches(), 1, "a fresh response is served from the cache");
    let own = answer["server_keys"].as_array().unwrap().iter().find(|e| e["server_name"] == deployment.server_name);
    assert!(own.is_some(), "our own keys are served too: {answer}");
}

#[tokio::test]
async fn a_key_the_notary_does_not_hold_is_fetched_from_its_server() {
    let ca = TestCa::new("notary refetch CA");
    let deployment = deployment(&ca, true).await;
    let remote = RemoteServer::start(&ca).await;
    let federation = Client::new(&deployment.federation_url);
    let listed = |answer: &Value, key_id: &str| {
        answer["server_keys"]
            .as_array()
            .is_some_and(|entries| entries.iter().any(|e| e["verify_keys"].get(key_id).is_some()))
    };

    let old_id = remote.key.key_id();
    let path = format!("/_matrix/key/v2/query/{}/{old_id}", remote.server_name);
    let answer = federation.get(&path).await.expect(200);
    assert!(listed(&answer, &old_id), "{answer}");
    assert_eq!(remote.key_fetches(), 1);
    federation.get(&path).await.expect(200);
    assert_eq!(remote.key_fetches(), 1, "a key held is served from the cache");

    // The server moves to a new key, which the cached response lacks.
    let new = SigningKey::generate();
    let expired = now_ms() - 1000;
    remote.serve_keys(RemoteServer::key_response(&remote.server_name, &new, &[(&old_id, &remote.key, expired)], &new));
    let path = format!("/_matrix/key/v2/query/{}/{}", remote.server_name, new.key_id());
    let answer = federation.get(&path).await.expect(200);
    assert!(listed(&answer, &new.key_id()), "the new key is fetched: {answer}");
    assert_eq!(remote.key_fetches(), 2);
    let answer = federation.get(&format!("/_matrix/key/v2/query/{}", remote.server_name)).await.expect(200);
    assert!(listed(&answer, &new.key_id()), "and served without a key id: {answer}");
    assert_eq!(remote.key_fetches(), 2);

    let ours = deployment.signing_key();
    let path = format!("/_matrix/key/v2/query/{}/{}", deployment.server_name, ours.key_id());
    let answer = federation.get(&path).await.expect(200);
    assert!(listed(&answer, &ours.key_id()), "our own key: {answer}");
}

/// A server name on loopback where nothing listens.
fn closed_server_name() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    format!("localhost:{}", listener.local_addr().unwrap().port())
}

#[tokio::test]
async fn keys_come_from_a_trusted_notary_when_the_server_cannot_give_them() {
    let ca = TestCa::new("notary client CA");
    let notary = RemoteServer::start(&ca).await;
    let ca_files = format!("[{}]", ca.pem_path().display());
    let deployment = Deployment::start_with(
        Options::new(Mode::Monolith)
            .set("global.outbound_trusted_ca_files", &ca_files)
            .set("global.trusted_key_servers", &format!("[\"{}\"]", notary.server_name)),
    )
    .await;
    let bus = deployment.bus().await;

    // Two servers that cannot be reached: the notary vouches for the first,
    // and relays the second without its own signature.
    let (vouched, relayed) = (closed_server_name(), closed_server_name());
    let (vouched_key, relayed_key) = (SigningKey::generate(), SigningKey::generate());
    let mut entry: CanonicalJsonObject =
        serde_json::from_value(RemoteServer::key_response(&vouched, &vouched_key, &[], &vouched_key)).unwrap();
    notary.key.sign_json(&notary.server_name, &mut entry).unwrap();
    let unsigned = RemoteServer::key_response(&relayed, &relayed_key, &[], &relayed_key);
    notary.reply("/_matrix/key/v2/query", 200, json!({ "server_keys": [entry, unsigned] }));

    let key_id = vouched_key.key_id();
    let got = query_keys(&bus, &vouched, &[&key_id], now_ms()).await.expect("the notary's answer");
    assert_eq!(got.keys.get(&key_id), Some(&vouched_key.public_key()));
    assert_eq!(notary.key_fetches(), 1, "the notary's own keys come from the notary");
    let asked = notary.recorded();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!((asked[0].method.as_str(), asked[0].uri.as_str()), ("POST", "/_matrix/key/v2/query"));
    assert_eq!(
        serde_json::from_slice::<Value>(&asked[0].body).unwrap(),
        json!({ "server_keys": { vouched.clone(): {} } })
    );

    let relayed_id = relayed_key.key_id();
    let message = expect_not_found(query_keys(&bus, &relayed, &[&relayed_id], now_ms()).await, "not co-signed");
    assert!(message.contains(&format!("not signed by {}", notary.server_name)), "{message}");
}
