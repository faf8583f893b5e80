//! What another server may not do to ours over federation, played by a fake
//! remote server in the test process that joins a room of ours properly
//! (make_join, send_join) and then misbehaves: requests with a forged,
//! missing or misdirected X-Matrix signature get 401 M_UNAUTHORIZED; a PDU
//! signed with a key that is not its server's is refused; one whose content
//! does not match its hash is kept redacted; an oversized PDU is refused; a
//! transaction sent again under the same id is answered as the first time
//! and its new PDUs are never taken. Nothing refused is served afterwards.
//! A signed body that canonical JSON cannot hold (a float) is 400
//! M_BAD_JSON, not 401, whatever its signature; in a transaction, whose
//! signature still counts, only the PDU holding it is dropped.
//! A server the room's `m.room.server_acl` denies is 403 M_FORBIDDEN on
//! `/invite` and `/get_missing_events` before anything else is looked at.

mod federation_support;
mod sync_support;

use axum::http::Method;
use common::keys::SigningKey;
use federation_support::{Scene, json_of};
use serde_json::{Value, json};
use sync_support::sync_until;
use tests::client::enc;

#[tokio::test]
async fn forged_and_misdirected_requests_are_unauthorized() {
    let scene = Scene::start().await;
    let good = scene.message("a message never taken", None);
    let other = SigningKey::generate();
    let (status, body) = scene.send("forged", vec![json_of(&good)], Some(&other)).await;
    assert_eq!((status, body["errcode"].as_str()), (401, Some("M_UNAUTHORIZED")), "{body}");

    let path = format!("/_matrix/federation/v1/event/{}", enc(scene.latest.as_str()));
    let unsigned = scene.http.get(format!("{}{path}", scene.hs.federation_url)).send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    let body: Value = unsigned.json().await.unwrap();
    assert_eq!(body["errcode"], "M_UNAUTHORIZED", "{body}");

    let misdirected = scene
        .remote
        .request(&scene.http, &scene.hs.federation_url, "elsewhere.example", Method::GET, &path, None, None)
        .await;
    assert_eq!((misdirected.0, misdirected.1["errcode"].as_str()), (401, Some("M_UNAUTHORIZED")), "{misdirected:?}");

    // A header that cannot be read (an origin with a port that is no number) is 400.
    let garbled = scene
        .http
        .get(format!("{}{path}", scene.hs.federation_url))
        .header("Authorization", r#"X-Matrix origin="remote.example:http",key="ed25519:a",sig="c2ln""#)
        .send()
        .await
        .unwrap();
    assert_eq!(garbled.status(), 400);
    let body: Value = garbled.json().await.unwrap();
    assert_eq!(body["errcode"], "M_UNAUTHORIZED", "{body}");

    // Properly signed, the same request is answered.
    assert!(scene.served(&scene.latest).await.is_some(), "mallory's join is served to her server");
    assert!(scene.served(&good.event_id).await.is_none(), "the forged transaction's PDU was never taken");
}

#[tokio::test]
async fn bad_pdus_are_refused_and_a_replayed_transaction_changes_nothing() {
    let scene = Scene::start().await;
    let good = scene.message("a genuine message", None);
    let (status, body) = scene.send("txn1", vec![json_of(&good)], None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["pdus"][good.event_id.as_str()], json!({}), "{body}");
    sync_until(&scene.alice, None, |sync| {
        sync["rooms"]["join"][&scene.room_id]["timeline"]["events"]
            .as_array()
            .is_some_and(|events| events.iter().any(|e| e["content"]["body"] == "a genuine message"))
    })
    .await;

    // The same transaction id with other PDUs: the first answer, nothing new taken.
    let sneaky = scene.message("smuggled in a replay", None);
    let (status, replayed) = scene.send("txn1", vec![json_of(&sneaky)], None).await;
    assert_eq!(status, 200, "{replayed}");
    assert_eq!(replayed, body, "a replayed transaction gets the first answer");

    // Signed by a key that is not the server's.
    let impostor = SigningKey::generate();
    let forged = scene.message("signed by someone else", Some(&impostor));
    // Content changed after signing: its hash no longer matches.
    let mut tampered = scene.message("the original words", None);
    tampered.object.insert(
        "content".into(),
        serde_json::from_value(json!({"msgtype": "m.text", "body": "words put in its mouth"})).unwrap(),
    );
    // Larger than the 64 KiB a PDU may be (no server would sign it: it is
    // made bigger after signing).
    let mut oversized = scene.message("soon to be too large", None);
    oversized.object.insert(
        "content".into(),
        serde_json::from_value(json!({"msgtype": "m.text", "body": "x".repeat(70_000)})).unwrap(),
    );
    let (status, body) =
        scene.send("txn2", vec![json_of(&forged), json_of(&tampered), json_of(&oversized)], None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["pdus"][forged.event_id.as_str()]["error"].is_string(), "the forged PDU is refused: {body}");
    assert!(body["pdus"][oversized.event_id.as_str()]["error"].is_string(), "the oversized PDU is refused: {body}");
    assert_eq!(body["pdus"][tampered.event_id.as_str()], json!({}), "the tampered PDU is kept, redacted: {body}");

    assert!(scene.served(&sneaky.event_id).await.is_none(), "the replay's PDU was never taken");
    assert!(scene.served(&forged.event_id).await.is_none(), "the forged PDU is not stored");
    assert!(scene.served(&oversized.event_id).await.is_none(), "the oversized PDU is not stored");
    let kept = scene.served(&tampered.event_id).await.expect("the tampered PDU is stored");
    assert_eq!(kept["content"], json!({}), "only what the signatures cover is kept: {kept}");
    let messages =
        scene.alice.get(&format!("/rooms/{}/messages?dir=b&limit=50", enc(&scene.room_id))).await.expect(200);
    let bodies: Vec<&str> =
        messages["chunk"].as_array().unwrap().iter().filter_map(|e| e["content"]["body"].as_str()).collect();
    assert_eq!(bodies, vec!["a genuine message"], "{messages}");
}

#[tokio::test]
async fn floats_are_bad_json_and_only_their_pdu_is_dropped_from_a_transaction() {
    let scene = Scene::start().await;
    let join = json!({
        "type": "m.room.member",
        "room_id": scene.room_id,
        "sender": scene.mallory,
        "state_key": scene.mallory,
        "content": {"membership": "join", "bad_val": 1.1},
    });
    let path = format!("/_matrix/federation/v2/send_join/{}/{}", enc(&scene.room_id), enc("$whatever"));
    let (http, url, name) = (&scene.http, &scene.hs.federation_url, &scene.hs.server_name);
    let forger = SigningKey::generate();
    for key in [None, Some(&forger)] {
        let (status, body) = scene.remote.request_non_canonical(http, url, name, Method::PUT, &path, &join, key).await;
        // Bad JSON before a bad signature.
        assert_eq!((status, body["errcode"].as_str()), (400, Some("M_BAD_JSON")), "{body}");
    }

    let good = scene.message("a message beside a float", None);
    let mut bad = json_of(&scene.message("a message with a float", None));
    bad["content"]["bad_val"] = json!(1.1);
    let transaction = json!({
        "origin": scene.remote.server_name,
        "origin_server_ts": 1,
        "pdus": [json_of(&good), bad],
    });
    // On /send the signature still counts, over the body as sent.
    let forged = "/_matrix/federation/v1/send/forged-floats";
    let (status, body) =
        scene.remote.request_non_canonical(http, url, name, Method::PUT, forged, &transaction, Some(&forger)).await;
    assert_eq!((status, body["errcode"].as_str()), (401, Some("M_UNAUTHORIZED")), "{body}");
    let path = "/_matrix/federation/v1/send/floaty";
    let (status, body) =
        scene.remote.request_non_canonical(http, url, name, Method::PUT, path, &transaction, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["pdus"][good.event_id.as_str()], json!({}), "{body}");
    assert_eq!(body["pdus"].as_object().map(|pdus| pdus.len()), Some(1), "only the good PDU is named: {body}");
    sync_until(&scene.alice, None, |sync| {
        sync["rooms"]["join"][&scene.room_id]["timeline"]["events"]
            .as_array()
            .is_some_and(|events| events.iter().any(|e| e["content"]["body"] == "a message beside a float"))
    })
    .await;
    let messages =
        scene.alice.get(&format!("/rooms/{}/messages?dir=b&limit=50", enc(&scene.room_id))).await.expect(200);
    let bodies: Vec<&str> =
        messages["chunk"].as_array().unwrap().iter().filter_map(|e| e["content"]["body"].as_str()).collect();
    assert_eq!(bodies, vec!["a message beside a float"], "{messages}");
}

#[tokio::test]
async fn a_server_the_acl_denies_is_forbidden_before_anything_else() {
    let scene = Scene::start().await;
    // An invite that is wrong in every other way: no such user, an event
    // that does not match its id.
    let invite_path = format!("/_matrix/federation/v2/invite/{}/{}", enc(&scene.room_id), enc("$not-its-id"));
    let invite = json!({
        "room_version": "10",
        "event": {
            "type": "m.room.member",
            "room_id": scene.room_id,
            "sender": scene.mallory,
            "state_key": format!("@nobody:{}", scene.hs.server_name),
            "content": {"membership": "invite"},
        },
        "invite_room_state": [],
    });
    let missing_path = format!("/_matrix/federation/v1/get_missing_events/{}", enc(&scene.room_id));
    let (status, body) = scene.call(Method::PUT, &invite_path, Some(&invite), None).await;
    assert!((400..500).contains(&status) && status != 403, "refused for what it is before the ban: {body}");
    let (status, body) = scene.call(Method::POST, &missing_path, Some(&json!({})), None).await;
    assert_eq!(status, 200, "allowed before the ban: {body}");

    // Server names are matched without their port.
    let acl = format!("/rooms/{}/state/m.room.server_acl/", enc(&scene.room_id));
    scene.alice.put(&acl, json!({"deny": ["localhost"], "allow": ["*"]})).await.expect(200);
    let (status, body) = scene.call(Method::PUT, &invite_path, Some(&invite), None).await;
    assert_eq!((status, body["errcode"].as_str()), (403, Some("M_FORBIDDEN")), "{body}");
    let (status, body) = scene.call(Method::POST, &missing_path, Some(&json!({})), None).await;
    assert_eq!((status, body["errcode"].as_str()), (403, Some("M_FORBIDDEN")), "{body}");
    let latest = json!({"latest_events": [scene.latest]});
    let (status, body) = scene.call(Method::POST, &missing_path, Some(&latest), None).await;
    assert_eq!((status, body["errcode"].as_str()), (403, Some("M_FORBIDDEN")), "{body}");
}
