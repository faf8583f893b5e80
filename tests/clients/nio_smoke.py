#!/usr/bin/env python3
"""Smoke test of the account features with a real client library, matrix-nio.

Usage: nio_smoke.py BASE_URL   (e.g. http://127.0.0.1:8008)

Registers a user, logs in on a second device, lists the devices, renames one,
sets and reads the display name, writes and reads global account data.
Exits 0 when everything worked; otherwise prints what failed and exits 1
(2 for bad usage or a missing matrix-nio).
"""

import asyncio
import json
import secrets
import sys
from urllib.parse import quote

try:
    from nio import (
        AsyncClient,
        AsyncClientConfig,
        DevicesResponse,
        LoginResponse,
        ProfileGetDisplayNameResponse,
        ProfileSetDisplayNameResponse,
        RegisterResponse,
        UpdateDeviceResponse,
    )
except ImportError as error:
    print(
        f"matrix-nio is not installed for {sys.executable} ({error}); "
        "install tests/clients/requirements.txt into a venv and point HS_PYTHON at its python",
        file=sys.stderr,
    )
    sys.exit(2)

PASSWORD = "correct horse battery staple"
# Bounded requests: nio otherwise retries timeouts forever.
CONFIG = AsyncClientConfig(request_timeout=15, max_timeouts=2, max_limit_exceeded=0)


class SmokeFailure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise SmokeFailure(message)


def expect(response, kind, what):
    """The response is of the expected nio type, or the step failed."""
    if not isinstance(response, kind):
        raise SmokeFailure(f"{what}: expected {kind.__name__}, got {type(response).__name__}: {response}")
    return response


async def raw_json(client, method, path, body=None):
    """A request nio has no method for, with the client's access token."""
    headers = {"Authorization": f"Bearer {client.access_token}"}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body)
    response = await client.send(method, path, data=data, headers=headers)
    text = await response.text()
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = text
    return response.status, parsed


async def device_names(client):
    devices = expect(await client.devices(), DevicesResponse, "GET /devices")
    return {device.id: device.display_name for device in devices.devices}


async def smoke(base_url):
    localpart = f"nio{secrets.token_hex(4)}"
    first = AsyncClient(base_url, localpart, config=CONFIG)
    second = AsyncClient(base_url, localpart, config=CONFIG)
    try:
        # Registration: nio sends m.login.dummy straight away, without a session.
        # The device is named: nio's schema wants every device's display_name,
        # which the spec leaves out for a device without one.
        registered = expect(
            await first.register(localpart, PASSWORD, device_name="nio first device"), RegisterResponse, "register"
        )
        user_id = registered.user_id
        check(user_id.startswith(f"@{localpart}:"), f"register: unexpected user id {user_id}")
        check(first.access_token and first.device_id, "register: nio did not take the session")
        print(f"registered {user_id} on device {first.device_id}")

        # A second device.
        expect(await second.login(PASSWORD, device_name="nio second device"), LoginResponse, "login")
        check(second.user_id == user_id, f"login: logged in as {second.user_id}, not {user_id}")
        check(second.device_id != first.device_id, "login: the second login reused the first device")
        print(f"logged in again on device {second.device_id}")

        # Both devices are listed, the second with its name.
        names = await device_names(first)
        check(
            set(names) == {first.device_id, second.device_id},
            f"devices: expected {first.device_id} and {second.device_id}, got {names}",
        )
        check(names[second.device_id] == "nio second device", f"devices: second device's name is {names[second.device_id]!r}")

        # Renaming the first device, seen from the second.
        expect(
            await first.update_device(first.device_id, {"display_name": "nio renamed"}),
            UpdateDeviceResponse,
            "PUT /devices/{id}",
        )
        names = await device_names(second)
        check(names.get(first.device_id) == "nio renamed", f"rename: the device list says {names}")
        print("devices listed and renamed")

        # The display name: the localpart at first, then what we set.
        shown = expect(await first.get_displayname(), ProfileGetDisplayNameResponse, "GET displayname")
        check(shown.displayname == localpart, f"displayname: a new account shows {shown.displayname!r}, not {localpart!r}")
        expect(await first.set_displayname("Nio Smoke"), ProfileSetDisplayNameResponse, "PUT displayname")
        shown = expect(await second.get_displayname(user_id), ProfileGetDisplayNameResponse, "GET displayname")
        check(shown.displayname == "Nio Smoke", f"displayname: read back {shown.displayname!r}")
        print("display name set and read")

        # Global account data (nio has no method for it): written by one device, read by the other.
        path = f"/_matrix/client/v3/user/{quote(user_id, safe='')}/account_data/org.example.nio_smoke"
        content = {"written_by": "matrix-nio", "n": [1, 2, 3]}
        status, body = await raw_json(first, "PUT", path, content)
        check(status == 200, f"PUT account data: {status} {body}")
        status, body = await raw_json(second, "GET", path)
        check(status == 200 and body == content, f"GET account data: {status} {body}")
        print("account data written and read")
    finally:
        await first.close()
        await second.close()


def main():
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} BASE_URL", file=sys.stderr)
        sys.exit(2)
    try:
        asyncio.run(asyncio.wait_for(smoke(sys.argv[1].rstrip("/")), timeout=120))
    except SmokeFailure as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
    except asyncio.TimeoutError:
        print("FAILED: the smoke test did not finish within 120s", file=sys.stderr)
        sys.exit(1)
    except Exception as error:  # noqa: BLE001 - any error is a failed smoke test
        print(f"FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
    print("nio smoke test passed")


if __name__ == "__main__":
    main()
