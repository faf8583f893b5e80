#!/usr/bin/env python3
"""Rooms with a real client library, matrix-nio.

Usage: nio_rooms.py BASE_URL   (e.g. http://127.0.0.1:8008)

Registers two users. The first creates a room and invites the second, who
sees the invite through /sync and joins; the first sends a message, which
the second receives through /sync; then the second pages back through the
room with /messages until it reaches the room's creation.
Exits 0 when everything worked; otherwise prints what failed and exits 1
(2 for bad usage or a missing matrix-nio).
"""

import asyncio
import secrets
import sys

try:
    from nio import (
        AsyncClient,
        AsyncClientConfig,
        JoinResponse,
        MessageDirection,
        RegisterResponse,
        RoomCreateResponse,
        RoomInviteResponse,
        RoomMessagesResponse,
        RoomSendResponse,
        SyncResponse,
    )
except ImportError as error:
    print(
        f"matrix-nio is not installed for {sys.executable} ({error}); "
        "install tests/clients/requirements.txt into a venv and point HS_PYTHON at its python",
        file=sys.stderr,
    )
    sys.exit(2)

PASSWORD = "correct horse battery staple"
# Bounded requests: nio otherwise retries timeouts forever. /sync long-polls
# for up to 10 s, well within the request timeout.
CONFIG = AsyncClientConfig(request_timeout=30, max_timeouts=2, max_limit_exceeded=0)
SYNC_TIMEOUT_MS = 10_000


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def expect(response, kind, what):
    """The response is of the expected nio type, or the step failed."""
    if not isinstance(response, kind):
        raise Failure(f"{what}: expected {kind.__name__}, got {type(response).__name__}: {response}")
    return response


async def register(base_url, prefix):
    localpart = f"{prefix}{secrets.token_hex(4)}"
    client = AsyncClient(base_url, localpart, config=CONFIG)
    expect(await client.register(localpart, PASSWORD), RegisterResponse, f"register {localpart}")
    return client


async def sync_until(client, since, found, what, attempts=6):
    """Long-polls /sync from `since` until `found(response)` is true; returns that response."""
    for _ in range(attempts):
        # A short timeline, so that reaching the creation takes /messages.
        response = expect(
            await client.sync(timeout=SYNC_TIMEOUT_MS, since=since, sync_filter={"room": {"timeline": {"limit": 3}}}),
            SyncResponse,
            f"sync ({what})",
        )
        if found(response):
            return response
        since = response.next_batch
    raise Failure(f"sync: {what} did not arrive within {attempts} long-polls")


async def scenario(base_url):
    alice = await register(base_url, "nioa")
    bob = await register(base_url, "niob")
    try:
        print(f"registered {alice.user_id} and {bob.user_id}")
        first = expect(await bob.sync(timeout=0), SyncResponse, "bob's initial sync")

        created = expect(await alice.room_create(name="nio rooms"), RoomCreateResponse, "createRoom")
        room_id = created.room_id
        expect(await alice.room_invite(room_id, bob.user_id), RoomInviteResponse, "invite")
        print(f"{alice.user_id} created {room_id} and invited {bob.user_id}")

        invited = await sync_until(bob, first.next_batch, lambda r: room_id in r.rooms.invite, "the invite")
        expect(await bob.join(room_id), JoinResponse, "join")
        print(f"{bob.user_id} saw the invite and joined")

        body = f"hello from nio {secrets.token_hex(4)}"
        sent = expect(
            await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body}),
            RoomSendResponse,
            "send",
        )

        def has_message(response):
            room = response.rooms.join.get(room_id)
            return room is not None and any(e.event_id == sent.event_id for e in room.timeline.events)

        received = await sync_until(bob, invited.next_batch, has_message, "the message")
        timeline = received.rooms.join[room_id].timeline
        event = next(e for e in timeline.events if e.event_id == sent.event_id)
        check(event.sender == alice.user_id, f"sync: the message's sender is {event.sender}")
        check(getattr(event, "body", None) == body, f"sync: the message's body is {getattr(event, 'body', None)!r}")
        print(f"{bob.user_id} received the message through /sync")

        # Back through history from the start of that timeline, to the room's creation.
        token = timeline.prev_batch
        check(token, "sync: the timeline has no prev_batch")
        # Newest first, as the pages back come.
        seen = [e.source.get("type") for e in reversed(timeline.events)]
        for _ in range(20):
            page = expect(
                await bob.room_messages(room_id, start=token, direction=MessageDirection.back, limit=5),
                RoomMessagesResponse,
                "messages",
            )
            seen.extend(e.source.get("type") for e in page.chunk)
            if "m.room.create" in seen:
                break
            check(page.chunk and page.end, f"messages: history ended before the room's creation; saw {seen}")
            token = page.end
        check("m.room.create" in seen, f"messages: no m.room.create after 20 pages; saw {seen}")
        check(len(seen) > len(timeline.events), "messages: the sync's timeline held everything; nothing was paged")
        check(seen[-1] == "m.room.create", f"messages: events after the room's creation: {seen}")
        print(f"{bob.user_id} paged back to the room's creation through {len(seen)} events")
    finally:
        await alice.close()
        await bob.close()


def main():
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} BASE_URL", file=sys.stderr)
        sys.exit(2)
    try:
        asyncio.run(asyncio.wait_for(scenario(sys.argv[1].rstrip("/")), timeout=150))
    except Failure as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
    except asyncio.TimeoutError:
        print("FAILED: the scenario did not finish within 150s", file=sys.stderr)
        sys.exit(1)
    except Exception as error:  # noqa: BLE001 - any error is a failed scenario
        print(f"FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
    print("nio rooms scenario passed")


if __name__ == "__main__":
    main()
