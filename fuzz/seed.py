#!/usr/bin/env python3
"""Writes starting inputs for the fuzz targets into fuzz/corpus/<target>/.

Optional: the fuzzers find their way from nothing, but real frames (the
examples of protocol/asyncapi.json in both encodings, envelopes, a cursor, a
token signed with another key than the fuzz target's, since the target
fails on any token it accepts) get them past the outer layers
sooner. Standard library only; run from anywhere: python3 fuzz/seed.py
"""

import base64
import hashlib
import hmac
import json
import pathlib
import struct
import time

HERE = pathlib.Path(__file__).resolve().parent
ASYNCAPI = HERE.parent / "protocol" / "asyncapi.json"
CLIENT_TYPES = {"comment_add", "typing_indicator", "reaction_add"}
# Not the key of fuzz_targets/token.rs ([7; 32]): well-formed up to the
# signature check, which must then refuse them.
TOKEN_KEY = bytes([8] * 32)


def msgpack(value):
    """The subset of MessagePack our messages use (maps with string keys)."""
    if value is None:
        return b"\xc0"
    if value is True:
        return b"\xc3"
    if value is False:
        return b"\xc2"
    if isinstance(value, int):
        if 0 <= value < 128:
            return bytes([value])
        return b"\xd3" + struct.pack(">q", value)
    if isinstance(value, float):
        return b"\xcb" + struct.pack(">d", value)
    if isinstance(value, str):
        raw = value.encode()
        if len(raw) < 32:
            return bytes([0xA0 | len(raw)]) + raw
        return b"\xda" + struct.pack(">H", len(raw)) + raw
    if isinstance(value, list):
        return b"\xdc" + struct.pack(">H", len(value)) + b"".join(map(msgpack, value))
    if isinstance(value, dict):
        out = b"\xde" + struct.pack(">H", len(value))
        for k, v in value.items():
            out += msgpack(k) + msgpack(v)
        return out
    raise TypeError(type(value))


def b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def token(kind):
    now = int(time.time())
    head = b64(json.dumps({"typ": "JWT", "alg": "HS256"}).encode())
    claims = {"sub": "42", "exp": now + 10 * 365 * 86400, "iat": now,
              "iss": "vridge-realtime", "aud": "vridge", "typ": kind, "jti": "seed"}
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(TOKEN_KEY, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def write(target, name, data):
    folder = HERE / "corpus" / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def main():
    spec = json.loads(ASYNCAPI.read_text())
    examples = []
    for name, message in spec["components"]["messages"].items():
        for i, example in enumerate(message.get("examples", [])):
            examples.append((f"{name}-{i}", example["payload"]))
    for name, payload in examples:
        if payload.get("type") in CLIENT_TYPES:
            write("decode_client_json", name, json.dumps(payload))
            write("decode_client_msgpack", name, msgpack(payload))
        else:
            write("decode_server", name + "-json", b"\x00" + json.dumps(payload).encode())
            write("decode_server", name + "-msgpack", b"\x01" + msgpack(payload))
            envelope = {"origin": 1, "project": 7,
                        "payload": {"kind": "event", "message": payload}}
            write("envelope", name, msgpack(envelope))
    write("envelope", "evict", msgpack(
        {"origin": 1, "project": 7, "payload": {"kind": "evict", "user": 4, "code": 4003}}))
    write("cursor", "c1-42", b64(b"c1:42"))
    write("token", "access", token("access"))
    write("token", "refresh", token("refresh"))


if __name__ == "__main__":
    main()
