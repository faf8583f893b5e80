//! Profiles: the whole profile and its fields (displayname, avatar_url and
//! the extended fields of v1.16), only the owner may change them, and every
//! display name or avatar change is published on `OutputProfileUpdate`.

use serde_json::{Value, json};
use tests::{Deployment, Mode, client::enc, streams::read_until};

fn localpart(user_id: &str) -> &str {
    user_id.trim_start_matches('@').split(':').next().unwrap()
}

#[tokio::test]
async fn profiles_are_read_changed_by_their_owner_and_published() {
    let deployment = Deployment::start(Mode::Polylith).await;
    let alice = deployment.new_user().await;
    let bob = deployment.new_user().await;
    let server = &deployment.server_name;
    let me = format!("/profile/{}", enc(&alice.user_id));
    let bobs = format!("/profile/{}", enc(&bob.user_id));

    // A new account: its display name is its localpart, and it has no avatar.
    let profile = bob.get(&me).await.expect(200);
    assert_eq!(profile["displayname"], localpart(&alice.user_id), "{profile}");
    assert!(profile.get("avatar_url").is_none(), "no avatar set yet: {profile}");
    assert_eq!(
        alice.get(&format!("{me}/displayname")).await.expect(200),
        json!({"displayname": localpart(&alice.user_id)})
    );
    alice.get(&format!("{me}/avatar_url")).await.expect_error(404, "M_NOT_FOUND");
    // The spec lets anyone look profiles up, with or without a token.
    let anonymous = deployment.client().get(&format!("{me}/displayname")).await.expect(200);
    assert_eq!(anonymous["displayname"], localpart(&alice.user_id));

    // Unknown and malformed user ids.
    alice.get(&format!("/profile/{}", enc(&format!("@nobody-here:{server}")))).await.expect_error(404, "M_NOT_FOUND");
    alice
        .get(&format!("/profile/{}/displayname", enc(&format!("@nobody-here:{server}"))))
        .await
        .expect_error(404, "M_NOT_FOUND");
    alice.get("/profile/not-a-user-id").await.expect_error(400, "M_INVALID_PARAM");
    alice.get(&format!("/profile/{}", enc("@no-server-name"))).await.expect_error(400, "M_INVALID_PARAM");

    // The display name: set by its owner, visible to others; nobody else may change it.
    assert_eq!(
        alice.put(&format!("{me}/displayname"), json!({"displayname": "Alice Liddell"})).await.expect(200),
        json!({})
    );
    assert_eq!(bob.get(&format!("{me}/displayname")).await.expect(200), json!({"displayname": "Alice Liddell"}));
    bob.put(&format!("{me}/displayname"), json!({"displayname": "Hijacked"})).await.expect_error(403, "M_FORBIDDEN");
    assert_eq!(alice.get(&format!("{me}/displayname")).await.expect(200)["displayname"], "Alice Liddell");

    // The avatar: an mxc URI only.
    let avatar = format!("mxc://{server}/aliceavatar");
    assert_eq!(alice.put(&format!("{me}/avatar_url"), json!({"avatar_url": avatar})).await.expect(200), json!({}));
    assert_eq!(bob.get(&format!("{me}/avatar_url")).await.expect(200), json!({"avatar_url": avatar}));
    let bad = alice.put(&format!("{me}/avatar_url"), json!({"avatar_url": "https://example.org/a.png"})).await;
    assert_eq!(bad.status, 400, "an avatar_url that is not an mxc URI: {}", bad.body);
    assert!(bad.errcode().starts_with("M_"), "an error body: {}", bad.body);
    assert_eq!(alice.get(&format!("{me}/avatar_url")).await.expect(200)["avatar_url"], avatar.as_str());
    alice
        .put(&format!("{bobs}/avatar_url"), json!({"avatar_url": format!("mxc://{server}/hijack")}))
        .await
        .expect_error(403, "M_FORBIDDEN");
    bob.get(&format!("{bobs}/avatar_url")).await.expect_error(404, "M_NOT_FOUND");

    // Extended fields.
    alice.get(&format!("{me}/m.tz")).await.expect_error(404, "M_NOT_FOUND");
    assert_eq!(alice.put(&format!("{me}/m.tz"), json!({"m.tz": "Europe/London"})).await.expect(200), json!({}));
    assert_eq!(bob.get(&format!("{me}/m.tz")).await.expect(200), json!({"m.tz": "Europe/London"}));
    let colour = json!({"r": 255, "g": 127, "b": 0, "names": ["orange", "tangerine"]});
    let custom = format!("{me}/org.example.colour");
    assert_eq!(alice.put(&custom, json!({"org.example.colour": colour})).await.expect(200), json!({}));
    assert_eq!(alice.get(&custom).await.expect(200), json!({"org.example.colour": colour}));
    let profile = bob.get(&me).await.expect(200);
    assert_eq!(profile["displayname"], "Alice Liddell", "{profile}");
    assert_eq!(profile["avatar_url"], avatar.as_str(), "{profile}");
    assert_eq!(profile["m.tz"], "Europe/London", "{profile}");
    assert_eq!(profile["org.example.colour"], colour, "{profile}");
    // Only the owner may set or delete them.
    bob.put(&custom, json!({"org.example.colour": "black"})).await.expect_error(403, "M_FORBIDDEN");
    bob.delete(&custom, json!({})).await.expect_error(403, "M_FORBIDDEN");
    assert_eq!(alice.get(&custom).await.expect(200), json!({"org.example.colour": colour}));
    // Deleted: gone from the field and from the profile; the others stay.
    assert_eq!(alice.delete(&custom, json!({})).await.expect(200), json!({}));
    alice.get(&custom).await.expect_error(404, "M_NOT_FOUND");
    let profile = alice.get(&me).await.expect(200);
    assert!(profile.get("org.example.colour").is_none(), "{profile}");
    assert_eq!(profile["m.tz"], "Europe/London", "{profile}");
    assert_eq!(profile["displayname"], "Alice Liddell", "{profile}");

    // Published: the display name change, then the avatar change (which came
    // after bob's refused attempt, so that was read too, had it been published).
    let stream = format!("{}_OutputProfileUpdate", deployment.config.global.nats.stream_prefix);
    let is_alice = |m: &Value| m["user_id"] == alice.user_id.as_str();
    let read = read_until(&deployment, &stream, "with alice's new avatar", |m| {
        is_alice(m) && m["avatar_url"] == avatar.as_str()
    })
    .await;
    let renamed = read
        .iter()
        .find(|m| is_alice(m) && m["displayname"] == "Alice Liddell")
        .unwrap_or_else(|| panic!("no message with alice's new display name before her avatar's: {read:#?}"));
    for message in [renamed, read.last().unwrap()] {
        assert!(message["stream_pos"].is_u64(), "stream_pos: {message}");
    }
    assert!(!read.iter().any(|m| m["displayname"] == "Hijacked"), "a refused change was published: {read:#?}");
}
