"""Deterministic sample SQLite database of the Cold Chain Dispatch System, for demos and tests.

``generate(path, scale, seed)`` executes the application's own ``sqlite_schema.sql`` in a new
file and fills it with clean, realistic Korean cold-chain data, stored the way SQLAlchemy
stores values on SQLite: DATETIME as ``'YYYY-MM-DD HH:MM:SS.ffffff'``, DATE as
``'YYYY-MM-DD'``, TIME as ``'HH:MM:SS.ffffff'``, BOOLEAN as 0/1, JSON as ``json.dumps``
text, NUMERIC as a float with at most two decimals.  Every value fits its declared type and
every foreign key resolves; dirty data is a separate concern.

Scale 1 holds about a million temperature logs (50k orders, 15k dispatches, 100k route
stops, 5k alerts, 30k audit events); small scales keep minimums so every table and every
foreign-key column is populated.  The same (scale, seed, profile) always gives the same bytes:
all randomness comes from ``random.Random`` instances seeded from ``seed``, and all times are
relative to the fixed ``BASE_TIME`` (the moment the snapshot was taken).

``profile="wide"`` (see ``PROFILES``) models another operator, shaped unlike ours: at scale 1
120k orders on 1.2M temperature logs (twice the orders per reading), 192k route stops, ~490
bytes of JSON goods per order, addresses near their VARCHAR(255) limit and instructions in
whole sentences.  Profiles are parameters only (``profiles``); the builders are shared.

Modules: ``database`` writes the file; ``world`` holds what the tables share; ``profiles``
the shapes; ``people``, ``clients``, ``fleet``, ``planning``, ``orders``, ``dispatches``,
``telemetry`` and ``audit`` build the rows; ``vocabulary``, ``korean``, ``timeline`` and
``formats`` supply words, text, times and SQLAlchemy's storage formats.
"""

from __future__ import annotations

from coldchain.sample.database import generate
from coldchain.sample.profiles import PROFILES
from coldchain.sample.tables import SCHEMA_PATH, TABLES
from coldchain.sample.timeline import BASE_TIME

__all__ = ["BASE_TIME", "PROFILES", "SCHEMA_PATH", "TABLES", "generate"]
