"""Step 04's checksums on the source side: each row's canonical bytes (built by SQLite in SQL,
JSON canonicalized here), hashed per primary-key segment. Run in worker processes, so it
imports only the standard library, apsw and the SQLite reader: a worker starts in ~30 ms
instead of the ~0.6 s that SQLAlchemy and psycopg cost (measured on 2 vCPUs)."""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from itertools import chain, groupby, islice, starmap
from operator import itemgetter, methodcaller
from typing import Any

from runbook.columns.conversions import open_source
from runbook.core import source as sqlite_source

SEGMENT = 10_000  # primary-key values per checksum segment where the keys are dense (see `width`)
MAX_WIDTH = 10**18  # keys per segment at most: a width SQL on both engines reads as an integer
MASK = (1 << 64) - 1
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
FETCH_ROWS = 5_000
HASH_ROWS = 1_000  # a segment's rows hashed this many at a time (wide rows: 10,000 held 80 MB)


def _numeric_text(number: Decimal) -> str:
    """PostgreSQL's numeric output: plain notation, the scale kept, no negative zero."""
    return format(abs(number) if number == 0 else number, "f")


_json_string = partial(json.dumps, ensure_ascii=False)


def _jsonb_node(node: Any) -> str:
    if isinstance(node, dict):
        keys = sorted(node, key=lambda k: (len(k.encode()), k.encode()))  # jsonb's key order
        return "{" + ", ".join(f"{_json_string(k)}: {_jsonb_node(node[k])}" for k in keys) + "}"
    if isinstance(node, list):
        return "[" + ", ".join(_jsonb_node(item) for item in node) + "]"
    if isinstance(node, str):
        return _json_string(node)
    if node is None or isinstance(node, bool):
        return json.dumps(node)
    if isinstance(node, Decimal):
        return _numeric_text(node)
    return str(node)


class _NotShortest(ValueError):
    """A JSON number the C encoder would not print as numeric does."""


def _shortest_float(text: str) -> float:
    """The number as a float, when its text is the shortest repr of that float in plain
    notation: numeric prints 1e-05 as 0.00001 and -0.0 as 0.0."""
    value = float(text)
    if repr(value) != text or "e" in text or (text[0] == "-" and value == 0):
        raise _NotShortest(text)
    return value


def _jsonb_key(key: str) -> tuple[int, bytes]:
    raw = key.encode()
    return len(raw), raw


_first = itemgetter(0)
# per tuple of keys as written: False when they are in jsonb's order already, else the getter of
# the pairs in that order (None for a repeated key); documents of one application repeat a few
# shapes, so a decoded object costs a look-up instead of a sort (measured: 0.27 s instead of
# 0.35 s for the 45k item lists of orders at scale 1)
_KEY_ORDERS: dict[tuple[str, ...], Callable | bool | None] = {}


def _key_order(keys: tuple[str, ...]) -> Callable | bool | None:
    if len(set(keys)) < len(keys):
        return None
    order = sorted(range(len(keys)), key=lambda i: _jsonb_key(keys[i]))
    return False if order == list(range(len(keys))) else itemgetter(*order)


def _jsonb_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len(pairs) < 2:
        return dict(pairs)
    keys = tuple(map(_first, pairs))
    getter = _KEY_ORDERS.get(keys, True)
    if getter is True:
        if len(_KEY_ORDERS) > 4096:
            _KEY_ORDERS.clear()
        getter = _KEY_ORDERS[keys] = _key_order(keys)
    if getter is False:
        return dict(pairs)
    if getter is None:  # a repeated key keeps its last value, as jsonb does
        merged = dict(pairs)
        return {key: merged[key] for key in sorted(merged, key=_jsonb_key)}
    return dict(getter(pairs))


# built once: json.loads with keyword arguments builds a new decoder for every value
_JSONB_DECODER = json.JSONDecoder(parse_float=_shortest_float, object_pairs_hook=_jsonb_object)
_jsonb_loads = _JSONB_DECODER.decode
_jsonb_dumps = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode


def _not_json(value: Any) -> Any:
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def _c_codec() -> tuple[Callable, Callable | None]:
    """json's C scanner and C encoder for jsonb's text, built once (None where this Python has
    no C encoder): called directly, without the Python around them in decode() and encode()."""
    make_scanner = getattr(json.scanner, "c_make_scanner", None)
    scan = make_scanner(_JSONB_DECODER) if make_scanner else _JSONB_DECODER.scan_once
    make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if make_encoder is None:
        return scan, None
    # no markers: a parsed document holds no cycles to look for
    separators = (": ", ", ")
    escape = json.encoder.encode_basestring  # ensure_ascii=False: UTF-8 as it is
    return scan, make_encoder(None, _not_json, escape, None, *separators, False, False, True)


_jsonb_scan, _jsonb_encode = _c_codec()


def _jsonb_fast(text: str) -> str:
    """`jsonb_text` of a document through json's C scanner and encoder alone when it is one
    value from its first character to its last (measured on 2 vCPUs, the wide sample's JSON:
    orders' 119k item lists 3.1 s instead of 3.9-4.2 s, 59k audit payloads 0.5 s instead of
    0.8 s, 26k route geometries 1.2 s instead of 1.4 s); other text through the decoder,
    which strips blanks around it and says what is wrong with it."""
    try:
        node, end = _jsonb_scan(text, 0)
    except StopIteration:  # blanks first, or no value at all
        node, end = None, -1
    if end != len(text) or _jsonb_encode is None:
        return _jsonb_dumps(_jsonb_loads(text))
    return "".join(_jsonb_encode(node, 0))


def jsonb_text(value: Any) -> str:
    """The text PostgreSQL prints for the jsonb a source JSON value becomes: keys in jsonb's
    order (shorter first, then bytewise), numbers exactly as numeric prints them, ', ' and ': '
    between items. Computed in Python for the source, compared with `jsonb::text` of the target.
    Fast path: when every number with a fraction is written as the shortest repr of its double
    in plain notation (as json.dumps writes most), the C encoder prints it the way numeric
    does; otherwise every node is printed here."""
    if isinstance(value, float):
        return _numeric_text(Decimal(repr(value)))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        value = value.decode()  # the preflight has refused text that is not UTF-8
    try:
        return _jsonb_fast(value)
    except _NotShortest:
        return _jsonb_node(json.loads(value, parse_float=Decimal))


def framed(canonical: Callable[[Any], str], value: Any) -> bytes:
    """One value canonicalized in Python, as the row's bytes hold it: '|', its length in bytes,
    ':', its canonical text; '|N' for NULL (the server builds the same with octet_length)."""
    if value is None:
        return b"|N"
    text = canonical(value).encode("utf-8", "surrogateescape")
    return b"|%d:%s" % (len(text), text)


_encoded = methodcaller("encode", "utf-8", "surrogateescape")


@dataclass
class Hasher:
    """Turns rows of (text, doubles…, values canonicalized in Python…) into per-segment
    [rows, 64-bit checksum]; plain data, so a worker process can do it."""

    integer_key: bool
    n_doubles: int
    canon: list  # functions giving the canonical text of the trailing values

    def row_bytes(self, row: tuple) -> bytes:
        """The canonical bytes of one row: the text (values delimited, ended by a newline), the
        doubles' 8 bytes each, then each value canonicalized in Python, its length in front."""
        return self.segment_bytes([row])

    def segment_bytes(self, rows: list[tuple]) -> bytes:
        """The canonical bytes of a segment's rows in key order, column by column through C
        loops (itemgetter, starmap, zip): Python code runs only for a value canonicalized in
        Python (measured: 0.26 s less than a Python loop per row for the three JSON tables at
        scale 1)."""
        texts = map(itemgetter(0), rows)
        if rows and isinstance(rows[0][0], str):
            texts = map(_encoded, texts)
        columns = [texts]
        n_doubles = self.n_doubles
        if n_doubles:
            pack = struct.Struct(">" + "d" * n_doubles).pack
            columns.append(starmap(pack, map(itemgetter(slice(1, 1 + n_doubles)), rows)))
        for i, canonical in enumerate(self.canon, start=1 + n_doubles):
            columns.append(map(partial(framed, canonical), map(itemgetter(i), rows)))
        if len(columns) == 1:
            return b"".join(texts)
        return b"".join(chain.from_iterable(zip(*columns, strict=True)))

    def sums(self, rows: Iterable[tuple]) -> dict[int, list[int]]:
        """Per segment: [rows, 64-bit checksum] of (segment, row…) rows. With an integer key
        the rows arrive in key order and a segment's checksum is the SHA-256 of its rows' bytes
        in that order; without one, the sum of each row's SHA-256."""
        segments: dict[int, list[int]] = {}
        sha256, row_bytes = hashlib.sha256, self.row_bytes
        if not self.integer_key:
            for row in rows:
                entry = segments.setdefault(row[0], [0, 0])
                entry[0] += 1
                entry[1] = (entry[1] + digest64(sha256(row_bytes(row[1:])).digest())) & MASK
            return segments
        for segment, group in groupby(rows, itemgetter(0)):
            keyed = [row[1:] for row in group]
            segments[segment] = [len(keyed), digest64(sha256(self.segment_bytes(keyed)).digest())]
        return segments


def digest64(digest: bytes) -> int:
    """The first 64 bits of a digest, as the number the checksums add up."""
    return int.from_bytes(digest[:8], "big")


def width(rows: int, low: int, high: int) -> int:
    """Keys per segment of a table of `rows` rows keyed from `low` to `high`: SEGMENT where
    the keys are dense, wider by as much as they are sparse (keys an epoch in milliseconds
    apart, say), so a segment holds about SEGMENT rows either way, not one row each (two
    queries a segment on each engine)."""
    return min(MAX_WIDTH, SEGMENT * max(1, (high - low + 1) // max(rows, 1)))


def segment_of(key: int, width: int = SEGMENT) -> int:
    """The segment of an integer key: `key / width` truncated toward zero, as both engines'
    integer division does."""
    return -(-key // width) if key < 0 else key // width


def segment_bounds(segment: int, width: int = SEGMENT) -> tuple[int, int]:
    """The smallest and largest key of a segment (within 64-bit integers)."""
    if segment > 0:
        low, high = segment * width, segment * width + width - 1
    elif segment < 0:
        low, high = segment * width - width + 1, segment * width
    else:
        low, high = -width + 1, width - 1
    return max(low, INT64_MIN), min(high, INT64_MAX)


def segments_present(
    next_key: Callable[[int], int | None], start: int = INT64_MIN, width: int = SEGMENT
) -> Iterator[tuple[int, int, int]]:
    """(segment, its lowest key, its highest key) of each segment holding a key at or above
    `start`, in key order: the next key present at or above a bound, its segment, then on past
    that segment; so gaps in the keys cost nothing. Both engines walk their tables this way."""
    while (key := next_key(start)) is not None:
        segment = segment_of(key, width)
        low, high = segment_bounds(segment, width)
        yield segment, low, high
        if high == INT64_MAX:
            return
        start = high + 1


def source_sums(job: dict[str, Any]) -> dict[int, list[int]]:
    """Per segment: [rows, checksum] of one table (or key range) of the source. With an integer
    key, segment by segment: the next key present, then that segment's rows by the primary
    key's index, so gaps in the keys cost nothing and no per-row segment number is computed."""
    if job["text_factory"] == "bytes":  # SQL builds every value's canonical form: apsw's
        conn = sqlite_source.open_readonly_fast(job["backup"])  # faster SQLite
    else:
        conn = open_source(job["backup"])
        if job["text_factory"] == "str":
            conn.text_factory = str
    hasher: Hasher = job["hasher"]
    try:
        if "segment_sql" not in job:
            return hasher.sums(iter(conn.execute(job["sql"])))  # streamed, either module
        segments: dict[int, list[int]] = {}

        def next_key(start: int) -> int | None:
            return conn.execute(job["next_key_sql"], (start,)).fetchone()[0]

        start, width = job.get("start", INT64_MIN), job.get("width", SEGMENT)
        for segment, low, high in segments_present(next_key, start, width):
            rows, sha256 = iter(conn.execute(job["segment_sql"], (low, high))), hashlib.sha256()
            count = 0
            while batch := list(islice(rows, HASH_ROWS)):  # the same bytes as all rows at once
                sha256.update(hasher.segment_bytes(batch))
                count += len(batch)
            segments[segment] = [count, digest64(sha256.digest())]
        return segments
    finally:
        conn.close()


def setup() -> None:
    """Nothing to prepare in a checksum worker process (its jobs carry what they need)."""
