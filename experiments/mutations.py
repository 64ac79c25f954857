"""Random, mutated and absurd inputs for the fuzz command: byte strings and message structures (dicts)."""
from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

#: Values no field expects: wrong types, extremes, huge containers and text.
ABSURD: tuple[Callable[[random.Random], Any], ...] = (
    lambda r: None, lambda r: True, lambda r: False, lambda r: 0, lambda r: -1, lambda r: 2**31, lambda r: 2**64,
    lambda r: -(2**63), lambda r: 10**r.randint(20, 400), lambda r: -(10**r.randint(20, 400)),
    lambda r: 1e308, lambda r: -1e308, lambda r: 5e-324, lambda r: float("inf"), lambda r: float("nan"),
    lambda r: r.uniform(-1e6, 1e6), lambda r: "", lambda r: "x" * r.choice((1, 100, 20_000)),
    lambda r: "\x00\ud800é", lambda r: [], lambda r: {}, lambda r: [1, 2, 3], lambda r: {"a": [None]},
    lambda r: nested(r.randint(10, 1500)), lambda r: [0.5] * r.choice((2, 50, 5000)),
)


def nested(depth: int) -> Any:
    """A list nested ``depth`` levels deep."""
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def absurd(rng: random.Random) -> Any:
    return rng.choice(ABSURD)(rng)


def mutate_fields(rng: random.Random, msg: dict[str, Any]) -> dict[str, Any]:
    """A message with one to three fields changed: set to an absurd value, nudged, removed, or added."""
    out = dict(msg)
    for _ in range(rng.randint(1, 3)):
        keys = list(out)
        action = rng.random()
        if action < 0.45 and keys:
            out[rng.choice(keys)] = absurd(rng)
        elif action < 0.65 and keys:
            key = rng.choice(keys)
            out[key] = nudged(rng, out[key])
        elif action < 0.8 and keys:
            del out[rng.choice(keys)]
        elif action < 0.9:
            out[rng.choice(("type", "extra", "seq", "fps", "coding", "sdp", "role"))] = absurd(rng)
        else:
            return {"type": out.get("type"), "nested": nested(rng.randint(100, 2000))}
    return out


def nudged(rng: random.Random, value: Any) -> Any:
    """A value of the same kind, moved towards or past its edges (numbers scaled or negated, dicts mutated)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return rng.choice((-value, value * rng.choice((2, 1000, 10**300)), value + 1, value - 1, 0))
    if isinstance(value, float):
        return rng.choice((-value, value * rng.choice((1e-300, 1e-6, 2, 1000, 1e300)), value + 1, value - 1, 0.0))
    if isinstance(value, dict):
        return mutate_fields(rng, value) if value else {"k": absurd(rng)}
    if isinstance(value, str):
        return value[: rng.randint(0, len(value))] + rng.choice(("", "\x00", "é" * 10, "v=0"))
    return absurd(rng)


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    """``data`` with bits flipped, bytes replaced, cut, extended, spliced, or replaced by random bytes."""
    buf = bytearray(data)
    action = rng.random()
    if action < 0.25 and buf:
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
    elif action < 0.4 and buf:
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
    elif action < 0.55:
        del buf[rng.randint(0, len(buf)):]
    elif action < 0.7:
        buf += rng.randbytes(rng.choice((1, 4, 50, 3000)))
    elif action < 0.85 and buf:
        i = rng.randrange(len(buf))
        buf[i:i] = buf[: rng.randint(0, len(buf))]
    else:
        buf = bytearray(rng.randbytes(rng.choice((0, 1, 3, 20, 200, 70_000))))
    return bytes(buf)


def mutate_text(rng: random.Random, text: str) -> str | bytes:
    """Text with its UTF-8 bytes mutated (as text where they still decode, else the bytes themselves)."""
    raw = mutate_bytes(rng, text.encode())
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw
