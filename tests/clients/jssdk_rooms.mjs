#!/usr/bin/env node
// Rooms with a real client library, matrix-js-sdk (npm; see package.json).
//
// Usage: node jssdk_rooms.mjs BASE_URL   (e.g. http://127.0.0.1:8008)
//
// Registers two users. The first creates a room and invites the second,
// whose sync loop (startClient, as a real app runs it) sees the invite; the
// second joins, the first sends a message, the second's sync loop receives
// it, and the second paginates its timeline back with /messages until it
// reaches the room's creation.
// Exits 0 when everything worked; otherwise prints what failed and exits 1
// (2 for bad usage or a missing matrix-js-sdk: run `npm ci` in tests/clients).

import { randomBytes } from "node:crypto";

const PASSWORD = "correct horse battery staple";
const DEADLINE_MS = 150_000;

let sdk;
try {
    sdk = await import("matrix-js-sdk");
} catch (error) {
    console.error(`matrix-js-sdk is not installed (${error.message}); run \`npm ci\` in tests/clients`);
    process.exit(2);
}
// The SDK logs every request and sync at info level; only trouble is of interest here.
try {
    const { logger } = await import("matrix-js-sdk/lib/logger.js");
    logger.setLevel?.("warn");
} catch {
    // An SDK without that module logs more, which is harmless.
}

class Failure extends Error {}

function check(condition, message) {
    if (!condition) throw new Failure(message);
}

/** Polls `predicate` until it is true, or fails after `ms`. */
async function waitFor(predicate, what, ms = 30_000) {
    const until = Date.now() + ms;
    while (!predicate()) {
        if (Date.now() > until) throw new Failure(`${what} did not happen within ${ms / 1000}s`);
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
}

async function register(baseUrl, prefix) {
    const localpart = `${prefix}${randomBytes(4).toString("hex")}`;
    const anonymous = sdk.createClient({ baseUrl });
    // Open registration with the dummy stage, sent straight away as clients do.
    const registered = await anonymous.registerRequest({
        username: localpart,
        password: PASSWORD,
        auth: { type: "m.login.dummy" },
    });
    check(registered.user_id?.startsWith(`@${localpart}:`), `register: unexpected answer ${JSON.stringify(registered)}`);
    return sdk.createClient({
        baseUrl,
        accessToken: registered.access_token,
        userId: registered.user_id,
        deviceId: registered.device_id,
    });
}

async function scenario(baseUrl) {
    const alice = await register(baseUrl, "jsa");
    const bob = await register(baseUrl, "jsb");
    console.log(`registered ${alice.getUserId()} and ${bob.getUserId()}`);
    try {
        let syncError = null;
        bob.on(sdk.ClientEvent.Sync, (state, _previous, data) => {
            if (state === sdk.SyncState.Error) syncError = data?.error ?? "unknown";
        });
        // Short timelines, so that the room's history is not all in the
        // sync that brings the join and paging back takes /messages.
        const filter = new sdk.Filter(bob.getUserId());
        filter.setTimelineLimit(3);
        await bob.startClient({ initialSyncLimit: 3, filter });
        await waitFor(() => bob.isInitialSyncComplete(), "bob's initial sync");

        const { room_id: roomId } = await alice.createRoom({
            name: "js-sdk rooms",
            preset: sdk.Preset.PrivateChat,
            visibility: sdk.Visibility.Private,
        });
        await alice.invite(roomId, bob.getUserId());
        console.log(`${alice.getUserId()} created ${roomId} and invited ${bob.getUserId()}`);

        await waitFor(
            () => bob.getRoom(roomId)?.getMyMembership() === "invite",
            `the invite reaching bob's sync loop (last sync error: ${syncError})`,
        );
        await bob.joinRoom(roomId);
        await waitFor(() => bob.getRoom(roomId)?.getMyMembership() === "join", "bob's join showing in his sync loop");
        console.log(`${bob.getUserId()} saw the invite and joined`);

        const body = `hello from matrix-js-sdk ${randomBytes(4).toString("hex")}`;
        const { event_id: eventId } = await alice.sendEvent(roomId, "m.room.message", { msgtype: "m.text", body });
        await waitFor(
            () => bob.getRoom(roomId)?.findEventById(eventId),
            `the message reaching bob's sync loop (last sync error: ${syncError})`,
        );
        const received = bob.getRoom(roomId).findEventById(eventId);
        check(received.getSender() === alice.getUserId(), `sync: the message's sender is ${received.getSender()}`);
        check(received.getContent().body === body, `sync: the message's body is ${received.getContent().body}`);
        console.log(`${bob.getUserId()} received the message through /sync`);

        // Back through history, as a client scrolling up does, to the room's creation.
        const timeline = bob.getRoom(roomId).getLiveTimeline();
        const types = () => timeline.getEvents().map((event) => event.getType());
        check(!types().includes("m.room.create"), `sync: the whole history came in the timeline: ${types()}`);
        let pages = 0;
        while (pages < 20 && !types().includes("m.room.create")) {
            const more = await bob.paginateEventTimeline(timeline, { backwards: true, limit: 5 });
            pages++;
            check(more || types().includes("m.room.create"), `messages: history ended early; timeline: ${types()}`);
        }
        check(types()[0] === "m.room.create", `messages: the timeline does not begin with the creation: ${types()}`);
        check(types().includes("m.room.message"), `messages: the message is not in the timeline: ${types()}`);
        console.log(`${bob.getUserId()} paged back to the room's creation: ${pages} pages, ${types().length} events`);
    } finally {
        bob.stopClient();
        alice.stopClient();
    }
}

if (process.argv.length !== 3) {
    console.error(`usage: node ${process.argv[1]} BASE_URL`);
    process.exit(2);
}
const timer = setTimeout(() => {
    console.error(`FAILED: the scenario did not finish within ${DEADLINE_MS / 1000}s`);
    process.exit(1);
}, DEADLINE_MS);
try {
    await scenario(process.argv[2].replace(/\/+$/, ""));
} catch (error) {
    const detail = error instanceof Failure ? error.message : `${error.name}: ${error.message}`;
    console.error(`FAILED: ${detail}`);
    process.exit(1);
}
clearTimeout(timer);
console.log("matrix-js-sdk rooms scenario passed");
process.exit(0);
