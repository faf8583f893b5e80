//! When another server refuses a request ours makes for a client (make_join,
//! invite, a profile or directory query) with a 4xx and a Matrix errcode,
//! the client gets that status and errcode (and the error's other fields,
//! such as `room_version`), not 502: the refusal is about what the client
//! asked. A 5xx, an answer that is not a Matrix error, or a 401 (about our
//! server's signature, which a client would take for its own token) stays
//! 502. The other server is a fake in the test process.

mod sync_support;

use serde_json::json;
use sync_support::create_room;
use tests::{Deployment, Mode, Options, client::enc, remote::RemoteServer, tls::TestCa};

#[tokio::test]
async fn refusals_of_another_server_reach_the_client_as_they_came() {
    let ca = TestCa::new("federation test CA");
    let hs = Deployment::start_with(Options::new(Mode::Monolith).federating(&ca)).await;
    let remote = RemoteServer::start(&ca).await;
    let alice = hs.new_user().await;
    let server = remote.server_name.clone();

    // Joining a room of a version we do not support.
    let incompatible = json!({
        "errcode": "M_INCOMPATIBLE_ROOM_VERSION",
        "error": "Your homeserver does not support the features required to join this room",
        "room_version": "org.example.future",
    });
    remote.reply("/_matrix/federation/v1/make_join/*", 400, incompatible.clone());
    let room = format!("!faraway:{server}");
    let answer = alice.post(&format!("/join/{}?via={}", enc(&room), enc(&server)), json!({})).await;
    let body = answer.expect_error(400, "M_INCOMPATIBLE_ROOM_VERSION");
    assert_eq!(body["room_version"], "org.example.future", "{body}");

    // Inviting a user whose server cannot take the room's version.
    let room_id = create_room(&alice, json!({"preset": "private_chat"})).await;
    remote.reply("/_matrix/federation/v2/invite/*", 400, incompatible);
    let bob = format!("@bob:{server}");
    let invite = format!("/rooms/{}/invite", enc(&room_id));
    alice.post(&invite, json!({"user_id": bob})).await.expect_error(400, "M_INCOMPATIBLE_ROOM_VERSION");
    remote.reply(
        "/_matrix/federation/v2/invite/*",
        403,
        json!({"errcode": "M_FORBIDDEN", "error": "bob takes no invites"}),
    );
    let refused = alice.post(&invite, json!({"user_id": bob})).await.expect_error(403, "M_FORBIDDEN");
    assert_eq!(refused["error"], "bob takes no invites", "{refused}");

    // A query the other server finds malformed, and one for nothing there.
    remote.reply(
        "/_matrix/federation/v1/query/profile",
        400,
        json!({"errcode": "M_INVALID_PARAM", "error": "no such field"}),
    );
    alice.get(&format!("/profile/{}", enc(&bob))).await.expect_error(400, "M_INVALID_PARAM");
    remote.reply(
        "/_matrix/federation/v1/query/directory",
        404,
        json!({"errcode": "M_NOT_FOUND", "error": "no such alias"}),
    );
    let alias = format!("#nowhere:{server}");
    alice.get(&format!("/directory/room/{}", enc(&alias))).await.expect_error(404, "M_NOT_FOUND");

    // The other server's own failures are 502, whatever they say.
    remote.reply(
        "/_matrix/federation/v1/query/directory",
        500,
        json!({"errcode": "M_UNKNOWN", "error": "database on fire"}),
    );
    alice.get(&format!("/directory/room/{}", enc(&alias))).await.expect_error(502, "M_UNKNOWN");
    remote.reply(
        "/_matrix/federation/v1/query/profile",
        401,
        json!({"errcode": "M_UNAUTHORIZED", "error": "bad signature"}),
    );
    alice.get(&format!("/profile/{}", enc(&bob))).await.expect_error(502, "M_UNKNOWN");
    remote.reply("/_matrix/federation/v1/query/profile", 400, json!({"not": "a Matrix error"}));
    alice.get(&format!("/profile/{}", enc(&bob))).await.expect_error(502, "M_UNKNOWN");
}
