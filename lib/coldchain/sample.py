"""Deterministic sample SQLite database of the Cold Chain Dispatch System, for demos and tests.

``generate(path, scale, seed)`` executes the application's own ``sqlite_schema.sql`` in a new
file and fills it with clean, realistic Korean cold-chain data, stored the way SQLAlchemy
stores values on SQLite: DATETIME as ``'YYYY-MM-DD HH:MM:SS.ffffff'``, DATE as
``'YYYY-MM-DD'``, TIME as ``'HH:MM:SS.ffffff'``, BOOLEAN as 0/1, JSON as ``json.dumps``
text, NUMERIC as a float with at most two decimals.  Every value fits its declared type and
every foreign key resolves; dirty data is a separate concern.

Scale 1 holds about a million temperature logs (50k orders, 15k dispatches, 100k route
stops, 5k alerts, 30k audit events); small scales keep minimums so every table and every
foreign-key column is populated.  The same (scale, seed) always gives a byte-identical file:
all randomness comes from ``random.Random`` instances seeded from ``seed``, and all times are
relative to the fixed ``BASE_TIME`` (the moment the snapshot was taken).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import random
import sqlite3
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BASE_TIME", "SCHEMA_PATH", "TABLES", "generate"]

#: The application's SQLite schema, shipped with this package.
SCHEMA_PATH = Path(__file__).with_name("sqlite_schema.sql")

#: Tables of the schema, in the order they are declared.
TABLES: tuple[str, ...] = (
    "users",
    "clients",
    "drivers",
    "vehicles",
    "orders",
    "dispatches",
    "dispatch_routes",
    "temperature_logs",
    "temperature_alerts",
    "audit_events",
)

#: "Now" of the sample (naive local time, Asia/Seoul, as the application stores it).
BASE_TIME = dt.datetime(2026, 3, 2, 6, 0, 0)
HISTORY_DAYS = 120
_HISTORY_START = dt.datetime.combine(
    BASE_TIME.date() - dt.timedelta(days=HISTORY_DAYS + 5), dt.time(0, 0)
)
_COMPANY_START = dt.datetime(2023, 9, 4, 9, 0, 0)

# ----------------------------------------------------------------------------- vocabulary

_SURNAMES: tuple[tuple[str, str, int], ...] = (
    ("김", "kim", 21),
    ("이", "lee", 15),
    ("박", "park", 8),
    ("최", "choi", 5),
    ("정", "jung", 5),
    ("강", "kang", 3),
    ("조", "cho", 3),
    ("윤", "yoon", 3),
    ("장", "jang", 3),
    ("임", "lim", 3),
    ("한", "han", 2),
    ("오", "oh", 2),
    ("서", "seo", 2),
    ("신", "shin", 2),
    ("권", "kwon", 2),
    ("황", "hwang", 2),
    ("안", "ahn", 2),
    ("송", "song", 2),
    ("류", "ryu", 1),
    ("홍", "hong", 1),
    ("전", "jeon", 1),
    ("고", "ko", 1),
    ("문", "moon", 1),
    ("양", "yang", 1),
    ("손", "son", 1),
    ("배", "bae", 1),
    ("백", "baek", 1),
    ("허", "heo", 1),
    ("남", "nam", 1),
    ("남궁", "namgung", 1),
    ("제갈", "jegal", 1),
)
_GIVEN_NAMES: tuple[tuple[str, str], ...] = (
    ("민준", "minjun"),
    ("서준", "seojun"),
    ("도윤", "doyun"),
    ("예준", "yejun"),
    ("시우", "siwoo"),
    ("하준", "hajun"),
    ("지호", "jiho"),
    ("주원", "juwon"),
    ("지훈", "jihoon"),
    ("준서", "junseo"),
    ("건우", "gunwoo"),
    ("현우", "hyunwoo"),
    ("우진", "woojin"),
    ("성민", "sungmin"),
    ("동현", "donghyun"),
    ("영호", "youngho"),
    ("정훈", "junghoon"),
    ("상철", "sangcheol"),
    ("재형", "jaehyung"),
    ("광수", "kwangsoo"),
    ("태호", "taeho"),
    ("병철", "byungcheol"),
    ("종민", "jongmin"),
    ("승현", "seunghyun"),
    ("진우", "jinwoo"),
    ("용수", "yongsoo"),
    ("서연", "seoyeon"),
    ("서윤", "seoyoon"),
    ("지우", "jiwoo"),
    ("하은", "haeun"),
    ("민서", "minseo"),
    ("지민", "jimin"),
    ("수빈", "subin"),
    ("예린", "yerin"),
    ("은지", "eunji"),
    ("미경", "mikyung"),
    ("혜진", "hyejin"),
    ("영희", "younghee"),
    ("수진", "sujin"),
    ("경숙", "kyungsook"),
)
_TITLES = ("과장", "대리", "팀장", "부장", "주임", "실장", "사원")

# (district, centre latitude, centre longitude, streets)
_DISTRICTS: tuple[tuple[str, float, float, tuple[str, ...]], ...] = (
    ("서울특별시 강남구", 37.5172, 127.0473, ("테헤란로", "논현로", "도산대로", "영동대로")),
    ("서울특별시 서초구", 37.4837, 127.0324, ("서초대로", "반포대로", "강남대로")),
    ("서울특별시 송파구", 37.5145, 127.1059, ("올림픽로", "송파대로", "양재대로")),
    ("서울특별시 강동구", 37.5301, 127.1238, ("천호대로", "상일로")),
    ("서울특별시 마포구", 37.5663, 126.9019, ("월드컵북로", "양화로", "마포대로")),
    ("서울특별시 영등포구", 37.5264, 126.8962, ("영등포로", "여의대로", "선유로")),
    ("서울특별시 성동구", 37.5634, 127.0369, ("왕십리로", "성수일로", "아차산로")),
    ("서울특별시 광진구", 37.5385, 127.0823, ("능동로", "자양로")),
    ("서울특별시 중구", 37.5641, 126.9979, ("을지로", "퇴계로", "청계천로")),
    ("서울특별시 종로구", 37.5735, 126.9790, ("종로", "율곡로")),
    ("서울특별시 용산구", 37.5326, 126.9905, ("한강대로", "이태원로")),
    ("서울특별시 구로구", 37.4954, 126.8874, ("디지털로", "경인로")),
    ("서울특별시 금천구", 37.4569, 126.8955, ("가산디지털1로", "시흥대로")),
    ("서울특별시 강서구", 37.5509, 126.8495, ("공항대로", "양천로", "마곡중앙로")),
    ("서울특별시 노원구", 37.6542, 127.0568, ("동일로", "노해로")),
    ("서울특별시 동대문구", 37.5744, 127.0396, ("왕산로", "전농로")),
    ("경기도 성남시 분당구", 37.3827, 127.1189, ("판교역로", "성남대로", "황새울로")),
    ("경기도 수원시 영통구", 37.2596, 127.0465, ("광교로", "영통로")),
    ("경기도 용인시 기흥구", 37.2804, 127.1147, ("중부대로", "흥덕중앙로")),
    ("경기도 고양시 일산동구", 37.6585, 126.7749, ("중앙로", "일산로")),
    ("경기도 부천시", 37.5034, 126.7660, ("길주로", "부일로")),
    ("경기도 안산시 단원구", 37.3180, 126.8131, ("산단로", "원포공원로")),
    ("경기도 화성시", 37.1996, 126.8312, ("동탄대로", "봉담순환로", "향남로")),
    ("경기도 평택시", 36.9921, 127.1128, ("평택로", "포승공단로")),
    ("경기도 이천시", 37.2720, 127.4350, ("마장로", "부발로")),
    ("경기도 광주시", 37.4292, 127.2551, ("경충대로", "오포로")),
    ("경기도 김포시", 37.6153, 126.7156, ("김포대로", "고촌로", "양촌로")),
    ("경기도 하남시", 37.5393, 127.2148, ("미사대로", "하남대로")),
    ("경기도 남양주시", 37.6360, 127.2165, ("경춘로", "진건로")),
    ("경기도 의정부시", 37.7381, 127.0337, ("평화로", "시민로")),
    ("경기도 시흥시", 37.3800, 126.8029, ("공단1대로", "정왕대로")),
    ("경기도 안양시 동안구", 37.3925, 126.9511, ("시민대로", "관악대로")),
    ("경기도 군포시", 37.3616, 126.9352, ("군포로", "산본로")),
    ("인천광역시 서구", 37.5453, 126.6760, ("봉수대로", "염곡로")),
)
_BUILDING_SUFFIXES = (
    "",
    "",
    "",
    " 2층",
    " B동 1층",
    " 물류센터 3동",
    " 지하 1층 하역장",
    " 1층 후문",
)
_STORES = ("해오름마트", "새벽마켓", "늘푸른식자재", "행복한식자재마트", "우리동네마트", "싱싱마트")
_BRANCHES = ("합정", "성수", "잠실", "판교", "동탄", "광교", "일산", "마곡", "문정", "상암", "미사")
_DEPOTS: tuple[tuple[float, float], ...] = (
    (37.229012, 127.353047),  # 이천 물류센터
    (37.339618, 126.934612),  # 군포 물류센터
    (37.601633, 126.758714),  # 김포 물류센터
)

_ZONES = ("FROZEN", "CHILLED", "AMBIENT")
_ZONE_KO = {"FROZEN": "냉동", "CHILLED": "냉장", "AMBIENT": "상온"}
# zone -> (min_temp, max_temp, set point, humidity base, door-open warming)
_ZONE_CLIMATE = {
    "FROZEN": (-25.0, -18.0, -21.5, 70.0, 2.5),
    "CHILLED": (0.0, 5.0, 2.5, 88.0, 1.5),
    "AMBIENT": (10.0, 25.0, 17.0, 55.0, 3.0),
}
# (vehicle_type, capacity_kg, capacity_pallets, temp_zone, weight)
_VEHICLE_TYPES: tuple[tuple[str, float, int, str, int], ...] = (
    ("1톤 냉동탑차", 1000.0, 2, "FROZEN", 18),
    ("1톤 냉장탑차", 1000.0, 2, "CHILLED", 18),
    ("2.5톤 냉동탑차", 2500.0, 4, "FROZEN", 14),
    ("2.5톤 냉장탑차", 2500.0, 4, "CHILLED", 12),
    ("3.5톤 냉동탑차", 3500.0, 6, "FROZEN", 9),
    ("5톤 냉동윙바디", 5000.0, 10, "FROZEN", 8),
    ("5톤 냉장윙바디", 5000.0, 10, "CHILLED", 7),
    ("11톤 냉동윙바디", 11000.0, 16, "FROZEN", 4),
    ("1톤 상온탑차", 1000.0, 2, "AMBIENT", 6),
    ("5톤 상온윙바디", 5000.0, 10, "AMBIENT", 4),
)
_PLATE_PRIVATE = "가나다라마거너더러머버서어저고노도로모보소오조구누두루무부수우주"
_PLATE_COMMERCIAL = "바사아자"
_PLATE_REGIONS = ("서울", "경기", "인천")

_CLIENT_PREFIXES = (
    "한빛",
    "대한",
    "서울",
    "경기",
    "새벽",
    "푸른",
    "해오름",
    "청정",
    "바다",
    "초록",
    "한결",
    "동방",
    "미래",
    "하나",
    "우리",
    "정직한",
    "산들",
    "온누리",
    "가온",
)
_CLIENT_KINDS = {
    "FROZEN": ("냉동", "냉동식품", "수산", "아이스", "냉장"),
    "CHILLED": ("냉장", "푸드", "신선물류", "축산", "유업", "정육", "F&B", "팜"),
    "AMBIENT": ("식품", "유통", "상사", "물산"),
}
_PRODUCTS = {
    "FROZEN": (
        ("냉동 만두 1kg", "BOX"),
        ("아이스크림 바 40입", "BOX"),
        ("냉동 새우 900g", "BOX"),
        ("냉동 닭가슴살 2kg", "BOX"),
        ("냉동 피자 3입", "BOX"),
        ("급랭 고등어 필렛", "KG"),
    ),
    "CHILLED": (
        ("우유 1L", "EA"),
        ("요거트 85g 12입", "BOX"),
        ("두부 300g", "EA"),
        ("신선 계란 30구", "TRAY"),
        ("샐러드 채소 1kg", "BOX"),
        ("한우 등심 1++", "KG"),
    ),
    "AMBIENT": (
        ("생수 2L 6입", "PACK"),
        ("라면 5입", "PACK"),
        ("참치 통조림 150g", "BOX"),
        ("쌀 10kg", "BAG"),
    ),
}
_NOTE_PHRASES = (
    "문 앞에 놓아주세요\n경비실 연락",
    "하차 시 지게차 필요",
    "도착 30분 전 연락 바랍니다",
    "냉동 제품 우선 하차\t검수 후 서명",
    '"취급주의" 상품 포함 - 적재 시 상단 배치',
    "후문 이용 (정문 공사 중)",
    "출입 비밀번호 #1234* / 경비실 문의",
    "검수 담당: '박 과장' 010-2345-6789",
    "오전 7시 이전 하차 금지\n주차 공간 협소",
    "온도기록지 출력본 동봉 요청",
    "배송지시서 위치: \\\\nas01\\물류\\배송지시서.xlsx",
    "팔레트 회수 필수 (KPP 팔레트)",
    "반품 1박스 회수\t송장번호 별도 전달",
    "엘리베이터 없음 - 계단 2층",
    "하역장 높이 1.2m, 윙바디 진입 불가",
    "C:\\Users\\dispatch\\메모.txt 참고",
    "일요일 휴무",
    "우천 시 천막 아래 하차",
    '입고 시간 엄수 ("지연 시 반려")',
)
_NOTE_JOINERS = ("\n", " / ", "\r\n", " ")
_CANCEL_REASONS = ("고객 요청으로 취소", "차량 고장", "주문 중복", "입고처 휴무")
_USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/121.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SM-S918N) AppleWebKit/537.36 Chrome/121.0 Mobile",
    "ColdChainDriver/2.3.1 (Android 13)",
)
_BCRYPT_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


# ----------------------------------------------------------------------------- formats


def _ts(value: dt.datetime | None) -> str | None:
    """DATETIME text exactly as SQLAlchemy writes it on SQLite (always six fraction digits)."""
    return None if value is None else value.isoformat(" ", "microseconds")


def _day(value: dt.date | None) -> str | None:
    """DATE text as SQLAlchemy writes it on SQLite."""
    return None if value is None else value.isoformat()


def _clock(value: dt.time | None) -> str | None:
    """TIME text as SQLAlchemy writes it on SQLite (always six fraction digits)."""
    return None if value is None else value.isoformat("microseconds")


def _json(value: Any) -> str | None:
    """JSON text as SQLAlchemy's default serializer (json.dumps, ensure_ascii) writes it."""
    return None if value is None else json.dumps(value)


def _km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in kilometres."""
    p = math.pi / 180.0
    h = (
        math.sin((lat2 - lat1) * p / 2.0) ** 2
        + math.cos(lat1 * p) * math.cos(lat2 * p) * math.sin((lng2 - lng1) * p / 2.0) ** 2
    )
    return 12742.0 * math.asin(math.sqrt(h))


def _insert(conn: sqlite3.Connection, table: str, columns: str, rows: Iterable[tuple]) -> None:
    """Stream rows into one table with executemany."""
    names = [c.strip() for c in columns.split(",")]
    sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    conn.executemany(sql, rows)


# ----------------------------------------------------------------------------- model of the world


@dataclass(slots=True)
class _Vehicle:
    id: int
    zone: str
    capacity_kg: float
    pallets: int
    min_temp: float
    max_temp: float
    depot: tuple[float, float]
    status: str
    sensor_id: str | None
    has_humidity: bool
    home_driver: int | None = None


@dataclass(slots=True)
class _Dispatch:
    number: str
    vehicle: _Vehicle
    driver_id: int | None
    date: dt.date
    status: str
    planned_start: dt.datetime
    actual_start: dt.datetime | None
    created_at: dt.datetime
    created_by: int | None
    n_orders: int
    orders: list[int] = field(default_factory=list)


@dataclass(slots=True)
class _Stop:
    order_id: int
    stop_type: str
    lat: float
    lng: float
    km: float
    eta: dt.datetime
    arrived: dt.datetime | None
    departed: dt.datetime | None


@dataclass(slots=True)
class _Trip:
    stops: list[_Stop]
    total_km: float
    end: dt.datetime | None
    waypoints: list[tuple[dt.datetime, float, float]]


class _Generator:
    """Builds the sample world table by table, streaming rows into one open transaction."""

    def __init__(self, conn: sqlite3.Connection, scale: float, seed: int) -> None:
        self.conn = conn
        self.seed = seed
        self.n_admins = max(2, round(5 * scale))
        self.n_dispatchers = max(3, round(40 * scale))
        self.n_vehicles = max(8, round(300 * scale))
        self.n_drivers = max(self.n_vehicles + 2, round(330 * scale))
        self.n_clients = max(20, round(1000 * scale))
        self.n_dispatches = max(30, round(15_000 * scale))
        self.n_orders = max(100, round(50_000 * scale))
        self.n_logs = max(2_000, round(1_000_000 * scale))
        self.n_audit = max(100, round(30_000 * scale))
        self.staff: list[int] = []
        self.dispatchers: list[int] = []
        self.user_ids: list[int] = []
        self.vehicles: list[_Vehicle] = []
        self.client_geo: list[tuple[float, float]] = []
        self.client_addr: list[str] = []
        self.client_window: list[dt.time | None] = []
        self.clients_by_zone: dict[str, list[int]] = {zone: [] for zone in _ZONES}
        self.dispatches: list[_Dispatch] = []
        self.order_plan: list[tuple[dt.datetime, int]] = []
        self.o_client = array("i")
        self.o_lat = array("d")
        self.o_lng = array("d")
        self.o_weight = array("d")
        self.alerts: list[tuple] = []
        self.audit: list[tuple] = []

    def rng(self, name: str) -> random.Random:
        """An independent, reproducible random stream for one part of the world."""
        return random.Random(f"coldchain:{self.seed}:{name}")

    def run(self) -> None:
        """Insert every table."""
        conn = self.conn
        users, drivers = self._people()
        _insert(
            conn,
            "users",
            "id, username, email, hashed_password, full_name, role, is_active, created_at,"
            " last_login_at",
            users,
        )
        _insert(
            conn,
            "clients",
            "id, code, name, business_number, contact_name, phone, address, latitude, longitude,"
            " pickup_window_start, pickup_window_end, required_temp_min, required_temp_max,"
            " notes, is_active, created_at, updated_at",
            self._clients(),
        )
        vehicle_rows = self._vehicles()
        _insert(
            conn,
            "drivers",
            "id, user_id, name, phone, license_number, license_expiry, status,"
            " current_vehicle_id, created_at",
            self._drivers(drivers),
        )
        _insert(
            conn,
            "vehicles",
            "id, code, plate_number, vehicle_type, capacity_kg, capacity_pallets, temp_zone,"
            " min_temp, max_temp, home_driver_id, status, last_inspection_date, created_at",
            vehicle_rows,
        )
        self._plan(drivers)
        _insert(
            conn,
            "orders",
            "id, order_number, client_id, created_by_id, pickup_address, delivery_address,"
            " delivery_latitude, delivery_longitude, temp_zone, weight_kg, pallet_count,"
            " requested_pickup_at, requested_delivery_at, status, priority, is_urgent,"
            " special_instructions, items, created_at, updated_at",
            self._orders(),
        )
        _insert(
            conn,
            "dispatches",
            "id, dispatch_number, vehicle_id, driver_id, dispatch_date, status,"
            " total_distance_km, total_weight_kg, optimization_score, planned_start_at,"
            " actual_start_at, completed_at, route_geometry, created_by_id, created_at",
            self._dispatch_rows(),
        )
        _insert(
            conn,
            "dispatch_routes",
            "id, dispatch_id, order_id, sequence, stop_type, eta, arrived_at,"
            " distance_from_prev_km, is_completed",
            self._routes(),
        )
        _insert(
            conn,
            "temperature_logs",
            "id, vehicle_id, dispatch_id, recorded_at, temperature_c, humidity_pct, door_open,"
            " latitude, longitude, sensor_id",
            self._logs(),
        )
        _insert(
            conn,
            "temperature_alerts",
            "id, vehicle_id, dispatch_id, log_id, alert_type, severity, message, threshold_c,"
            " observed_c, raised_at, acknowledged_by_id, acknowledged_at, resolved_at",
            ((i, *a) for i, a in enumerate(self.alerts, start=1)),
        )
        _insert(
            conn,
            "audit_events",
            "id, user_id, entity, entity_id, action, payload, occurred_at",
            self._audit_rows(),
        )

    # ------------------------------------------------------------------ small helpers

    @staticmethod
    def _moment(rng: random.Random, start: dt.datetime, end: dt.datetime) -> dt.datetime:
        """A random instant in [start, end) with microseconds."""
        span = int((end - start).total_seconds() * 1_000_000)
        return start + dt.timedelta(microseconds=rng.randrange(max(span, 1)))

    @staticmethod
    def _micro(rng: random.Random) -> dt.timedelta:
        """A random sub-second offset, so stored microseconds are rarely zero."""
        return dt.timedelta(microseconds=rng.randrange(1, 1_000_000))

    @staticmethod
    def _past(rng: random.Random, value: dt.datetime, floor: dt.datetime) -> dt.datetime:
        """``value`` if it already happened at BASE_TIME, else a random instant before it."""
        if value <= BASE_TIME:
            return value
        return _Generator._moment(rng, min(floor, BASE_TIME), BASE_TIME)

    @staticmethod
    def _person(rng: random.Random) -> tuple[str, str]:
        """A Korean full name and its romanized ``given.surname`` form."""
        surname = rng.choices(_SURNAMES, weights=[s[2] for s in _SURNAMES])[0]
        given = rng.choice(_GIVEN_NAMES)
        return surname[0] + given[0], f"{given[1]}.{surname[1]}"

    @staticmethod
    def _mobile(rng: random.Random) -> str:
        """A Korean mobile number, 010-XXXX-XXXX."""
        return f"010-{rng.randrange(2000, 10000)}-{rng.randrange(10000):04d}"

    @staticmethod
    def _landline(rng: random.Random, district: str) -> str:
        """A landline number with the area code of the district."""
        if district.startswith("서울"):
            return f"02-{rng.randrange(200, 10000)}-{rng.randrange(10000):04d}"
        area = "032" if district.startswith("인천") else "031"
        return f"{area}-{rng.randrange(200, 1000)}-{rng.randrange(10000):04d}"

    @staticmethod
    def _address(rng: random.Random) -> tuple[str, str, float, float]:
        """A road-name address in Seoul, Gyeonggi or Incheon, with its district and position."""
        district, lat, lng, streets = rng.choice(_DISTRICTS)
        street = f"{district} {rng.choice(streets)} {rng.randrange(1, 400)}"
        if rng.random() < 0.15:
            street += f"-{rng.randrange(1, 30)}"
        lat += rng.uniform(-0.025, 0.025)
        lng += rng.uniform(-0.03, 0.03)
        return street, district, lat, lng

    @staticmethod
    def _note(rng: random.Random) -> str:
        """Korean free text as dispatchers type it: newlines, tabs, quotes, backslashes."""
        phrases = rng.sample(_NOTE_PHRASES, rng.choice((1, 1, 2, 2, 3)))
        out = phrases[0]
        for phrase in phrases[1:]:
            out += rng.choice(_NOTE_JOINERS) + phrase
        return out

    def _ack(
        self, rng: random.Random, raised: dt.datetime
    ) -> tuple[int | None, dt.datetime | None, dt.datetime | None]:
        """Who acknowledged an alert and when it was acknowledged and resolved (if yet)."""
        ack_by = ack_at = resolved = None
        if rng.random() < 0.88:
            at = raised + dt.timedelta(seconds=rng.uniform(30, 2400))
            if at <= BASE_TIME:
                ack_by, ack_at = rng.choice(self.dispatchers), at
        if rng.random() < 0.9:
            at = (ack_at or raised) + dt.timedelta(seconds=rng.uniform(120, 5400))
            if at <= BASE_TIME:
                resolved = at
        return ack_by, ack_at, resolved

    # ------------------------------------------------------------------ users and drivers

    def _people(self) -> tuple[list[tuple], list[tuple]]:
        """Users (admins, dispatchers, drivers) and the driver records linked to them."""
        rng = self.rng("people")
        taken: set[str] = set()
        cutoff = _HISTORY_START - dt.timedelta(days=1)

        def username(base: str) -> str:
            name, n = base, 1
            while name in taken:
                n += 1
                name = f"{base}{n}"
            taken.add(name)
            return name

        people: list[tuple[dt.datetime, int, str, str, str]] = []  # (created, seq, role, ko, en)
        for i in range(self.n_admins):
            created = self._moment(rng, _COMPANY_START, _COMPANY_START + dt.timedelta(days=20))
            ko, en = self._person(rng)
            people.append((created, len(people), "ADMIN", ko, "admin" if i == 0 else en))
        for _ in range(self.n_dispatchers):
            created = self._moment(rng, _COMPANY_START, cutoff)
            people.append((created, len(people), "DISPATCHER", *self._person(rng)))
        driver_people: list[tuple[dt.datetime, int, str, str, str]] = []
        for _ in range(self.n_drivers):
            created = self._moment(rng, _COMPANY_START + dt.timedelta(days=10), cutoff)
            driver_people.append((created, len(people), "DRIVER", *self._person(rng)))
            people.append(driver_people[-1])
        with_account = {p[1] for p in driver_people if rng.random() < 0.92}
        with_account.add(driver_people[0][1])

        users: list[tuple] = []
        user_of: dict[int, int] = {}
        for created, seq, role, ko, en in sorted(people):
            if role == "DRIVER" and seq not in with_account:
                continue
            uid = len(users) + 1
            user_of[seq] = uid
            name = username(en)
            if role == "DRIVER":
                domain = rng.choice(("naver.com", "gmail.com", "daum.net", "kakao.com"))
            else:
                domain = "hanbitlogis.co.kr"
                self.staff.append(uid)
                if role == "DISPATCHER":
                    self.dispatchers.append(uid)
            self.user_ids.append(uid)
            hashed = "$2b$12$" + "".join(rng.choice(_BCRYPT_ALPHABET) for _ in range(53))
            active = role == "ADMIN" or rng.random() < 0.95
            last_login = None
            if rng.random() < 0.9:
                last_login = self._moment(
                    rng, max(created, BASE_TIME - dt.timedelta(days=60)), BASE_TIME
                )
            users.append(
                (
                    uid,
                    name,
                    f"{name}@{domain}",
                    hashed,
                    None if rng.random() < 0.03 else ko,
                    role,
                    int(active),
                    _ts(created),
                    _ts(last_login),
                )
            )
        # The newest account has not logged in yet.
        users[-1] = (*users[-1][:-1], None)
        drivers = [
            (user_of.get(seq), created, ko) for created, seq, _role, ko, _en in driver_people
        ]
        drivers.sort(key=lambda d: d[1])
        return users, drivers

    def _drivers(self, drivers: list[tuple[int | None, dt.datetime, str]]) -> Iterator[tuple]:
        """Driver rows; most drive their home vehicle (the drivers <-> vehicles cycle)."""
        rng = self.rng("drivers")
        licences: set[str] = set()
        spare_vehicles = [v.id for v in self.vehicles if v.home_driver is None]
        for did, (user_id, created, name) in enumerate(drivers, start=1):
            while True:
                licence = (
                    f"{rng.randrange(11, 29)}-{rng.randrange(90, 125) % 100:02d}-"
                    f"{rng.randrange(1_000_000):06d}-{rng.randrange(100):02d}"
                )
                if licence not in licences:
                    licences.add(licence)
                    break
            expiry = None
            if rng.random() < 0.95:
                expiry = BASE_TIME.date() + dt.timedelta(days=rng.randrange(-20, 3650))
            vehicle: int | None = None
            if did <= self.n_vehicles and self.vehicles[did - 1].home_driver == did:
                vehicle = did if rng.random() < 0.95 else None
            elif spare_vehicles and rng.random() < 0.6:
                vehicle = rng.choice(spare_vehicles)
            if vehicle is None:
                status = rng.choice(("OFF_DUTY", "OFF_DUTY", "ON_LEAVE", "AVAILABLE"))
            else:
                status = rng.choice(("ON_DUTY", "ON_DUTY", "AVAILABLE", "OFF_DUTY"))
            yield (
                did,
                user_id,
                name,
                self._mobile(rng),
                licence,
                _day(expiry),
                status,
                vehicle,
                _ts(created + dt.timedelta(seconds=rng.uniform(5, 900))),
            )

    # ------------------------------------------------------------------ clients and vehicles

    def _clients(self) -> Iterator[tuple]:
        """Shippers in Seoul and Gyeonggi with pickup windows and required temperatures."""
        rng = self.rng("clients")
        for cid in range(1, self.n_clients + 1):
            zone = _ZONES[cid - 1] if cid <= 3 else rng.choices(_ZONES, (40, 45, 15))[0]
            self.clients_by_zone[zone].append(cid)
            prefix, kind = rng.choice(_CLIENT_PREFIXES), rng.choice(_CLIENT_KINDS[zone])
            pattern = rng.randrange(6)
            if pattern == 0:
                name = f"(주){prefix}{kind}"
            elif pattern == 1:
                name = f"{prefix}{kind}(주)"
            elif pattern == 2:
                name = f"{prefix}{kind} {rng.choice(_BRANCHES)}센터"
            elif pattern == 3:
                name = f"농업회사법인 {prefix}{kind}"
            else:
                name = f"{prefix}{kind}"
            address, district, lat, lng = self._address(rng)
            address += rng.choice(_BUILDING_SUFFIXES)
            self.client_geo.append((lat, lng))
            self.client_addr.append(address)
            geo_known = rng.random() < 0.96
            start = end = None
            if rng.random() < 0.85:
                start = dt.time(rng.randrange(3, 11), rng.choice((0, 0, 30)))
                end = dt.time(start.hour + rng.randrange(2, 6), start.minute)
            self.client_window.append(start)
            tmin, tmax = _ZONE_CLIMATE[zone][:2]
            temps = rng.random() < 0.9
            contact = None
            if rng.random() < 0.9:
                contact = self._person(rng)[0]
                if rng.random() < 0.6:
                    contact += " " + rng.choice(_TITLES)
            phone = None
            if rng.random() < 0.95:
                phone = self._landline(rng, district) if rng.random() < 0.6 else self._mobile(rng)
            created = self._moment(rng, _COMPANY_START, _HISTORY_START)
            updated = None
            if rng.random() < 0.6:
                updated = self._moment(rng, created, BASE_TIME)
            yield (
                cid,
                f"CL-{cid:05d}",
                name,
                (
                    f"{rng.randrange(101, 900)}-{rng.randrange(1, 100):02d}-"
                    f"{rng.randrange(100000):05d}"
                )
                if rng.random() < 0.95
                else None,
                contact,
                phone,
                address,
                round(lat, 6) if geo_known else None,
                round(lng, 6) if geo_known else None,
                _clock(start),
                _clock(end),
                tmin if temps else None,
                tmax if temps else None,
                self._note(rng) if rng.random() < 0.5 else None,
                int(rng.random() < 0.94),
                _ts(created),
                _ts(updated),
            )

    def _vehicles(self) -> list[tuple]:
        """Refrigerated trucks with Korean plates; most have a home driver."""
        rng = self.rng("vehicles")
        plates: set[str] = set()
        rows = []
        for vid in range(1, self.n_vehicles + 1):
            if vid <= 3:  # every temperature zone has at least one truck
                kind = next(t for t in _VEHICLE_TYPES if t[3] == _ZONES[vid - 1])
            else:
                kind = rng.choices(_VEHICLE_TYPES, [t[4] for t in _VEHICLE_TYPES])[0]
            vtype, capacity, pallets, zone, _ = kind
            while True:
                style = rng.random()
                digits = f"{rng.randrange(10000):04d}"
                if style < 0.55:
                    plate = (
                        f"{rng.choice(_PLATE_REGIONS)}{rng.randrange(80, 98)}"
                        f"{rng.choice(_PLATE_COMMERCIAL)}{digits}"
                    )
                elif style < 0.8:
                    plate = f"{rng.randrange(80, 98)}{rng.choice(_PLATE_PRIVATE)}{digits}"
                else:
                    plate = f"{rng.randrange(800, 980)}{rng.choice(_PLATE_PRIVATE)}{digits}"
                if plate not in plates:
                    plates.add(plate)
                    break
            status = "ACTIVE"
            if vid > 3:
                status = rng.choices(("ACTIVE", "MAINTENANCE", "RETIRED"), (90, 7, 3))[0]
            min_temp, max_temp = _ZONE_CLIMATE[zone][:2]
            sensor = f"TK-{rng.randrange(100000, 1000000)}-CH{rng.randrange(1, 3)}"
            vehicle = _Vehicle(
                id=vid,
                zone=zone,
                capacity_kg=capacity,
                pallets=pallets,
                min_temp=min_temp,
                max_temp=max_temp,
                depot=rng.choice(_DEPOTS),
                status=status,
                sensor_id=sensor if rng.random() < 0.97 else None,
                has_humidity=rng.random() < 0.85,
                home_driver=vid if (vid == 1 or rng.random() < 0.92) else None,
            )
            self.vehicles.append(vehicle)
            inspected = None
            if rng.random() < 0.9:
                inspected = BASE_TIME.date() - dt.timedelta(days=rng.randrange(1, 365))
            rows.append(
                (
                    vid,
                    f"VH-{vid:04d}",
                    plate,
                    vtype,
                    capacity,
                    pallets,
                    zone,
                    min_temp,
                    max_temp,
                    vehicle.home_driver,
                    status,
                    _day(inspected),
                    _ts(self._moment(rng, _COMPANY_START, _HISTORY_START)),
                )
            )
        return rows

    # ------------------------------------------------------------- plan of dispatches and orders

    def _plan(self, drivers: list[tuple]) -> None:
        """Decide every dispatch (day, truck, driver, status) and when each order was placed."""
        rng = self.rng("plan")
        today = BASE_TIME.date()
        days = [today + dt.timedelta(days=d) for d in range(1 - HISTORY_DAYS, 2)]
        weights = [
            (0.35 if day.weekday() == 6 else 1.0) * (0.6 if day > today else 1.0) for day in days
        ]
        total = sum(weights)
        history_pool = [v for v in self.vehicles if v.status != "RETIRED"]
        current_pool = [v for v in self.vehicles if v.status == "ACTIVE"]
        spare_drivers = list(range(self.n_vehicles + 1, len(drivers) + 1))
        per_dispatch = (self.n_orders * 0.93) / self.n_dispatches
        cumulative, done = 0.0, 0
        for day, weight in zip(days, weights, strict=True):
            cumulative += weight
            upto = round(cumulative / total * self.n_dispatches)
            count, done = upto - done, upto
            pool = history_pool if day < today else current_pool
            plans = []
            for vehicle in rng.sample(pool, min(count, len(pool))):
                planned = dt.datetime.combine(day, dt.time(3, 30)) + dt.timedelta(
                    minutes=5 * rng.randrange(55)
                )
                actual = planned + dt.timedelta(seconds=rng.gauss(240, 480)) + self._micro(rng)
                if day < today:
                    status = "CANCELLED" if rng.random() < 0.04 else "COMPLETED"
                elif day == today and actual <= BASE_TIME - dt.timedelta(minutes=5):
                    status = "IN_PROGRESS"
                else:
                    status = "PLANNED"
                if status in ("CANCELLED", "PLANNED"):
                    actual = None
                if vehicle.home_driver is not None and rng.random() < 0.9:
                    driver = vehicle.home_driver
                elif spare_drivers and rng.random() < 0.7:
                    driver = rng.choice(spare_drivers)
                else:
                    driver = None
                created = dt.datetime.combine(
                    day - dt.timedelta(days=1), dt.time(14, 0)
                ) + dt.timedelta(seconds=rng.uniform(0, 6 * 3600))
                created = self._past(rng, created, BASE_TIME - dt.timedelta(hours=4))
                n_orders = max(1, min(8, round(per_dispatch * rng.uniform(0.4, 1.6))))
                plans.append(
                    _Dispatch(
                        number="",
                        vehicle=vehicle,
                        driver_id=driver,
                        date=day,
                        status=status,
                        planned_start=planned,
                        actual_start=actual,
                        created_at=created,
                        created_by=rng.choice(self.staff) if rng.random() < 0.95 else None,
                        n_orders=n_orders,
                    )
                )
            plans.sort(key=lambda p: (p.planned_start, p.vehicle.id))
            for n, plan in enumerate(plans, start=1):
                plan.number = f"DSP-{day:%Y%m%d}-{n:04d}"
                self.dispatches.append(plan)

        # Orders are numbered in the order they were placed.
        entries: list[tuple[dt.datetime, int, int]] = []  # (created_at, dispatch index | -1/-2)
        for index, plan in enumerate(self.dispatches):
            for _ in range(plan.n_orders):
                lead = dt.timedelta(hours=rng.uniform(0.5, 72))
                entries.append((plan.created_at - lead + self._micro(rng), index, len(entries)))
        for _ in range(max(10, self.n_orders - len(entries))):
            if rng.random() < 0.6:  # still waiting for a truck
                created = BASE_TIME - dt.timedelta(hours=rng.uniform(0.2, 40))
                entries.append((created + self._micro(rng), -1, len(entries)))
            else:  # cancelled before it was dispatched
                created = self._moment(rng, _HISTORY_START, BASE_TIME)
                entries.append((created, -2, len(entries)))
        entries.sort()
        self.order_plan = [(created, index) for created, index, _ in entries]
        for order_id, (_created, index) in enumerate(self.order_plan, start=1):
            if index >= 0:
                self.dispatches[index].orders.append(order_id)

    # ------------------------------------------------------------------ orders

    def _orders(self) -> Iterator[tuple]:
        """Orders; each dispatched order carries goods of its truck's temperature zone."""
        rng = self.rng("orders")
        p_audit = min(1.0, 0.4 * self.n_audit / max(1, len(self.order_plan)))
        for oid, (created, index) in enumerate(self.order_plan, start=1):
            plan = self.dispatches[index] if index >= 0 else None
            if plan is not None:
                zone = plan.vehicle.zone
                fill = rng.uniform(0.35, 0.95) / plan.n_orders
                weight = round(plan.vehicle.capacity_kg * fill, 2)
                pallets = max(1, round(plan.vehicle.pallets * fill))
                day = plan.date
                status = {
                    "COMPLETED": "DELIVERED",
                    "CANCELLED": "CANCELLED",
                    "IN_PROGRESS": "IN_TRANSIT",
                    "PLANNED": "ASSIGNED",
                }[plan.status]
            else:
                zone = rng.choices(_ZONES, (40, 45, 15))[0]
                weight = round(rng.uniform(20, 2500), rng.choice((0, 1, 2)))
                pallets = rng.randrange(1, 5)
                status = "PENDING" if index == -1 else "CANCELLED"
                after = BASE_TIME if status == "PENDING" else created
                day = (after + dt.timedelta(days=rng.randrange(1, 4))).date()
            zone_clients = self.clients_by_zone[zone]
            client = zone_clients[int(len(zone_clients) * rng.random() ** 1.7)]
            self.o_client.append(client)
            window = self.client_window[client - 1]
            requested_pickup = None
            if window is not None and rng.random() < 0.85:
                requested_pickup = dt.datetime.combine(day, window)
            requested_delivery = dt.datetime.combine(
                day, dt.time(rng.randrange(9, 19), rng.choice((0, 30)))
            )
            street, _district, lat, lng = self._address(rng)
            if rng.random() < 0.6:
                street += f" {rng.choice(_STORES)} {rng.choice(_BRANCHES)}점"
            else:
                street += rng.choice(_BUILDING_SUFFIXES)
            self.o_lat.append(lat)
            self.o_lng.append(lng)
            self.o_weight.append(weight)
            geo_known = rng.random() < 0.97
            priority = rng.choices((1, 2, 3, 4, 5), (5, 15, 55, 15, 10))[0]
            items = None
            if rng.random() < 0.9:
                items = []
                for name, unit in rng.sample(_PRODUCTS[zone], rng.randrange(1, 4)):
                    items.append(
                        {
                            "sku": f"{zone[:2]}-{rng.randrange(1000, 10000)}",
                            "name": name,
                            "qty": rng.randrange(1, 120),
                            "unit": unit,
                            "lot": f"L{created:%y%m}-{rng.randrange(1, 1000):03d}",
                        }
                    )
            if status == "DELIVERED":
                updated = plan.planned_start + dt.timedelta(hours=rng.uniform(3, 12))
            elif status in ("ASSIGNED", "IN_TRANSIT"):
                updated = plan.created_at + dt.timedelta(seconds=rng.uniform(1, 900))
            elif status == "CANCELLED":
                updated = created + dt.timedelta(hours=rng.uniform(0.2, 30))
            else:
                updated = created + dt.timedelta(minutes=rng.uniform(1, 90))
                updated = updated if rng.random() < 0.3 else None
            if updated is not None:
                updated = self._past(rng, updated + self._micro(rng), created)
            created_by = rng.choice(self.staff) if rng.random() < 0.85 else None
            number = f"ORD-{created:%Y%m%d}-{oid:06d}"
            if rng.random() < p_audit:
                payload = {"order_number": number, "client_id": client, "status": "PENDING"}
                self.audit.append((created, created_by, "order", oid, "CREATE", payload))
            if status == "CANCELLED" and updated is not None and rng.random() < p_audit:
                payload = {
                    "status": {"from": "PENDING", "to": "CANCELLED"},
                    "reason": rng.choice(_CANCEL_REASONS),
                }
                self.audit.append((updated, created_by, "order", oid, "STATUS_CHANGE", payload))
            yield (
                oid,
                number,
                client,
                created_by,
                self.client_addr[client - 1],
                street,
                round(lat, 6) if geo_known else None,
                round(lng, 6) if geo_known else None,
                zone,
                weight,
                pallets,
                _ts(requested_pickup),
                _ts(requested_delivery),
                status,
                priority,
                int(priority == 1 or rng.random() < 0.03),
                self._note(rng) if rng.random() < 0.45 else None,
                _json(items),
                _ts(created),
                _ts(updated),
            )

    # ------------------------------------------------------------------ dispatches and routes

    def _trip(self, index: int) -> _Trip:
        """The route of one dispatch: pickups, then deliveries, with planned and actual times.

        Pure function of (seed, index), so dispatches, routes and logs agree.
        """
        plan = self.dispatches[index]
        rng = self.rng(f"trip:{index}")
        lat, lng = plan.vehicle.depot
        deliveries = list(plan.orders)
        rng.shuffle(deliveries)
        legs = [("PICKUP", o) for o in plan.orders] + [("DELIVERY", o) for o in deliveries]
        planned, actual = plan.planned_start, plan.actual_start
        waypoints = [] if actual is None else [(actual, lat, lng)]
        stops: list[_Stop] = []
        total = 0.0
        for stop_type, order_id in legs:
            if stop_type == "PICKUP":
                s_lat, s_lng = self.client_geo[self.o_client[order_id - 1] - 1]
            else:
                s_lat, s_lng = self.o_lat[order_id - 1], self.o_lng[order_id - 1]
            km = _km(lat, lng, s_lat, s_lng) * rng.uniform(1.15, 1.4) + 0.4
            total += km
            drive = dt.timedelta(hours=km / rng.uniform(28, 48))
            service = dt.timedelta(minutes=rng.uniform(8, 30))
            planned += drive
            eta = planned
            planned += service
            arrived = departed = None
            if actual is not None:
                actual += drive * rng.uniform(0.9, 1.35)
                arrived = actual
                actual += service * rng.uniform(0.8, 1.6)
                departed = actual
                waypoints.append((arrived, s_lat, s_lng))
                waypoints.append((departed, s_lat, s_lng))
            stops.append(_Stop(order_id, stop_type, s_lat, s_lng, km, eta, arrived, departed))
            lat, lng = s_lat, s_lng
        back = _km(lat, lng, *plan.vehicle.depot) * rng.uniform(1.15, 1.4) + 0.4
        total += back
        end = None
        if actual is not None:
            end = actual + dt.timedelta(hours=back / rng.uniform(35, 60)) + self._micro(rng)
            waypoints.append((end, *plan.vehicle.depot))
            if plan.status != "COMPLETED":
                end = None
        return _Trip(stops, total, end, waypoints)

    def _dispatch_rows(self) -> Iterator[tuple]:
        """Dispatch rows with totals, optimizer score and route geometry."""
        rng = self.rng("dispatches")
        p_audit = min(1.0, 0.35 * self.n_audit / (2.5 * len(self.dispatches)))
        for index, plan in enumerate(self.dispatches):
            did = index + 1
            trip = self._trip(index)
            geometry = None
            if plan.status != "CANCELLED" and rng.random() < 0.9:
                coords = [plan.vehicle.depot] + [(s.lat, s.lng) for s in trip.stops]
                coords.append(plan.vehicle.depot)
                geometry = {
                    "type": "LineString",
                    "coordinates": [[round(g, 6), round(a, 6)] for a, g in coords],
                }
            weight = round(sum(self.o_weight[o - 1] for o in plan.orders), 2)
            if rng.random() < p_audit:
                payload = {
                    "dispatch_number": plan.number,
                    "vehicle_id": plan.vehicle.id,
                    "order_ids": plan.orders,
                }
                self.audit.append(
                    (plan.created_at, plan.created_by, "dispatch", did, "CREATE", payload)
                )
                if plan.actual_start is not None:
                    payload = {"status": {"from": "PLANNED", "to": "IN_PROGRESS"}}
                    self.audit.append(
                        (plan.actual_start, None, "dispatch", did, "STATUS_CHANGE", payload)
                    )
                if trip.end is not None:
                    payload = {
                        "status": {"from": "IN_PROGRESS", "to": "COMPLETED"},
                        "distance_km": round(trip.total_km, 1),
                    }
                    self.audit.append((trip.end, None, "dispatch", did, "STATUS_CHANGE", payload))
                if plan.status == "CANCELLED":
                    when = self._moment(rng, plan.created_at, plan.planned_start)
                    payload = {
                        "status": {"from": "PLANNED", "to": "CANCELLED"},
                        "reason": rng.choice(_CANCEL_REASONS),
                    }
                    self.audit.append(
                        (when, plan.created_by, "dispatch", did, "STATUS_CHANGE", payload)
                    )
            yield (
                did,
                plan.number,
                plan.vehicle.id,
                plan.driver_id,
                _day(plan.date),
                plan.status,
                round(trip.total_km, 2)
                if plan.status != "CANCELLED" or rng.random() < 0.5
                else None,
                weight if rng.random() < 0.95 else None,
                round(rng.uniform(0.62, 0.98), 4) if rng.random() < 0.85 else None,
                _ts(plan.planned_start),
                _ts(plan.actual_start),
                _ts(trip.end),
                _json(geometry),
                plan.created_by,
                _ts(plan.created_at),
            )

    def _routes(self) -> Iterator[tuple]:
        """Route stops, numbered 1..n within each dispatch."""
        rng = self.rng("routes")
        route_id = 0
        for index, plan in enumerate(self.dispatches):
            trip = self._trip(index)
            for sequence, stop in enumerate(trip.stops, start=1):
                route_id += 1
                arrived = (
                    stop.arrived if stop.arrived is not None and stop.arrived <= BASE_TIME else None
                )
                completed = arrived is not None
                if completed and plan.status == "COMPLETED" and rng.random() < 0.02:
                    arrived = None  # driver forgot to tap "arrived"; the stop is still done
                eta = stop.eta
                if plan.status == "CANCELLED" and rng.random() < 0.5:
                    eta = None
                km = round(stop.km, 2)
                if (sequence == 1 and rng.random() < 0.1) or (
                    plan.status == "CANCELLED" and rng.random() < 0.5
                ):
                    km = None
                yield (
                    route_id,
                    index + 1,
                    stop.order_id,
                    sequence,
                    stop.stop_type,
                    _ts(eta),
                    _ts(arrived),
                    km,
                    int(completed),
                )

    # ------------------------------------------------------------------ temperature logs and alerts

    def _logs(self) -> Iterator[tuple]:
        """Sensor readings: pre-cooling at the depot, then the trip; alerts are collected."""
        rng = self.rng("logs")
        logging = [i for i, p in enumerate(self.dispatches) if p.actual_start is not None]
        precool = 4
        per_trip = max(5.0, (self.n_logs - precool * len(logging)) / max(1, len(logging)))
        log_id = 0
        first = True
        for index in logging:
            plan = self.dispatches[index]
            vehicle = plan.vehicle
            trip = self._trip(index)
            tmin, tmax, setpoint, humidity, door_warm = _ZONE_CLIMATE[vehicle.zone]
            start = plan.actual_start
            end = trip.end or (BASE_TIME - dt.timedelta(seconds=rng.uniform(5, 240)))
            planned_end = trip.waypoints[-1][0]
            fraction = min(1.0, (end - start) / (planned_end - start))
            n = max(2, round(per_trip * rng.uniform(0.8, 1.2) * fraction))
            step = (end - start) / n
            sensor, d_lat, d_lng = vehicle.sensor_id, *vehicle.depot

            # Pre-cooling in the yard: not yet part of the dispatch.
            warm = setpoint + rng.uniform(4, 9)
            slow_precool = rng.random() < 0.02
            for j in range(precool):
                log_id += 1
                at = (
                    start
                    - (precool - j) * dt.timedelta(minutes=rng.uniform(6, 9))
                    + self._micro(rng)
                )
                temp = setpoint + (warm - setpoint) * math.exp(-0.9 * j) + rng.gauss(0, 0.2)
                temp = round(temp, 2)
                if slow_precool and j == precool - 1:
                    temp = round(tmax + rng.uniform(0.5, 3), 2)
                    self._temperature_alert(rng, vehicle, None, log_id, temp, at)
                yield (
                    log_id,
                    vehicle.id,
                    None,
                    _ts(at),
                    temp,
                    round(humidity + rng.gauss(0, 3), 1) if vehicle.has_humidity else None,
                    int(j == 0),
                    round(d_lat + rng.gauss(0, 0.0002), 6),
                    round(d_lng + rng.gauss(0, 0.0002), 6),
                    sensor,
                )

            gap_from = gap_to = -1
            if rng.random() < 0.03 and n > 12:
                gap_from = rng.randrange(2, n - 8)
                gap_to = gap_from + rng.randrange(3, 7)
                raised = start + step * gap_from + dt.timedelta(minutes=10) + self._micro(rng)
                if raised <= BASE_TIME:
                    self.alerts.append(
                        (
                            vehicle.id,
                            index + 1,
                            None,
                            "SENSOR_OFFLINE",
                            "MEDIUM",
                            f"온도 센서 통신 두절 10분 이상 ({sensor or '센서 미등록'})",
                            None,
                            None,
                            _ts(raised),
                            *map(_ts_or_id, self._ack(rng, raised)),
                        )
                    )
            waypoints = trip.waypoints
            w = 0
            noise = 0.0
            excursion = 0
            excursion_len = 0
            peak = 0.0
            alerted = False
            stops = [(s.arrived, s.departed) for s in trip.stops]
            s = 0
            for i in range(n):
                if gap_from <= i < gap_to:
                    continue
                at = start + step * i + dt.timedelta(seconds=rng.uniform(-20, 20))
                at = min(at, BASE_TIME) if i else start
                while w + 1 < len(waypoints) - 1 and waypoints[w + 1][0] <= at:
                    w += 1
                t0, lat0, lng0 = waypoints[w]
                t1, lat1, lng1 = waypoints[min(w + 1, len(waypoints) - 1)]
                f = 0.0 if t1 <= t0 else min(1.0, max(0.0, (at - t0) / (t1 - t0)))
                while s < len(stops) and stops[s][1] < at:
                    s += 1
                door = s < len(stops) and stops[s][0] <= at and rng.random() < 0.5
                noise = 0.85 * noise + rng.gauss(0, 0.25)
                temp = setpoint + noise
                if door:
                    temp += rng.uniform(0.3, door_warm)
                if excursion == 0 and (rng.random() < 0.0042 or (first and i == n // 2)):
                    excursion_len = excursion = rng.randrange(3, 9)
                    low = vehicle.zone != "AMBIENT" and rng.random() < 0.12
                    peak = tmin - rng.uniform(0.5, 3) if low else tmax + rng.uniform(0.3, 6)
                    alerted = False
                    first = False
                if excursion:
                    k = excursion_len - excursion + 1
                    temp = setpoint + (peak - setpoint) * math.sin(
                        math.pi * k / (excursion_len + 1)
                    )
                    excursion -= 1
                log_id += 1
                temp = round(temp, 2)
                if not alerted and (temp > tmax or temp < tmin):
                    alerted = True
                    self._temperature_alert(rng, vehicle, index + 1, log_id, temp, at)
                elif door and rng.random() < 0.004:
                    raised = at + dt.timedelta(minutes=5)
                    if raised <= BASE_TIME:
                        self.alerts.append(
                            (
                                vehicle.id,
                                index + 1,
                                log_id,
                                "DOOR_OPEN",
                                "LOW",
                                "적재함 도어 5분 이상 개방",
                                None,
                                temp,
                                _ts(raised),
                                *map(_ts_or_id, self._ack(rng, raised)),
                            )
                        )
                gps = rng.random() < 0.985
                yield (
                    log_id,
                    vehicle.id,
                    index + 1,
                    _ts(at if at.microsecond else at + self._micro(rng)),
                    temp,
                    round(humidity + rng.gauss(0, 2.5), 1) if vehicle.has_humidity else None,
                    int(door),
                    round(lat0 + (lat1 - lat0) * f + rng.gauss(0, 0.0003), 6) if gps else None,
                    round(lng0 + (lng1 - lng0) * f + rng.gauss(0, 0.0003), 6) if gps else None,
                    sensor,
                )

    def _temperature_alert(
        self,
        rng: random.Random,
        vehicle: _Vehicle,
        dispatch_id: int | None,
        log_id: int,
        observed: float,
        at: dt.datetime,
    ) -> None:
        """Record a TEMP_HIGH / TEMP_LOW alert raised by one reading."""
        high = observed > vehicle.max_temp
        threshold = vehicle.max_temp if high else vehicle.min_temp
        delta = abs(observed - threshold)
        severity = (
            "LOW" if delta < 1 else "MEDIUM" if delta < 3 else "HIGH" if delta < 5 else "CRITICAL"
        )
        zone = _ZONE_KO[vehicle.zone]
        if high:
            message = f"{zone} 적재함 온도 상한 초과: {observed:.1f}°C (허용 {threshold:.1f}°C)"
        else:
            message = f"{zone} 적재함 온도 하한 미달: {observed:.1f}°C (허용 {threshold:.1f}°C)"
        raised = min(at + dt.timedelta(seconds=rng.uniform(1, 60)), BASE_TIME)
        self.alerts.append(
            (
                vehicle.id,
                dispatch_id,
                log_id,
                "TEMP_HIGH" if high else "TEMP_LOW",
                severity,
                message,
                threshold,
                observed,
                _ts(raised),
                *map(_ts_or_id, self._ack(rng, raised)),
            )
        )

    # ------------------------------------------------------------------ audit trail

    def _audit_rows(self) -> Iterator[tuple]:
        """Audit events (collected while generating, plus logins and master-data edits), by time."""
        rng = self.rng("audit")
        events = self.audit
        wanted = self.n_audit - len(events)
        for _ in range(max(0, wanted)):
            at = self._moment(rng, _HISTORY_START, BASE_TIME)
            kind = rng.random()
            if kind < 0.6:
                uid = rng.choice(self.user_ids)
                ip = f"10.{rng.randrange(10, 40)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                payload = {"ip": ip, "user_agent": rng.choice(_USER_AGENTS)}
                events.append((at, uid, "user", uid, "LOGIN", payload))
            elif kind < 0.7:
                uid = rng.choice(self.user_ids)
                events.append((at, uid, "user", uid, "LOGOUT", None))
            elif kind < 0.8:
                vehicle = rng.choice(self.vehicles)
                payload = {"last_inspection_date": _day(at.date()), "result": "합격"}
                events.append(
                    (at, rng.choice(self.staff), "vehicle", vehicle.id, "UPDATE", payload)
                )
            elif kind < 0.9:
                client = rng.randrange(1, self.n_clients + 1)
                fields = rng.sample(["phone", "contact_name", "notes", "pickup_window_start"], 2)
                events.append(
                    (at, rng.choice(self.staff), "client", client, "UPDATE", {"fields": fields})
                )
            elif kind < 0.95:
                driver = rng.randrange(1, self.n_drivers + 1)
                payload = {"status": {"from": "OFF_DUTY", "to": "ON_DUTY"}}
                events.append(
                    (at, rng.choice(self.staff), "driver", driver, "STATUS_CHANGE", payload)
                )
            else:
                payload = {
                    "format": "xlsx",
                    "rows": rng.randrange(10, 5000),
                    "report": "일일 배차 현황",
                }
                events.append((at, rng.choice(self.staff), "report", None, "EXPORT", payload))
        order = sorted(range(len(events)), key=lambda i: (events[i][0], i))
        for event_id, i in enumerate(order, start=1):
            at, user_id, entity, entity_id, action, payload = events[i]
            yield (event_id, user_id, entity, entity_id, action, _json(payload), _ts(at))


def _ts_or_id(value: int | dt.datetime | None) -> int | str | None:
    """Render the acknowledgement triple: user ids stay ints, datetimes become DATETIME text."""
    return _ts(value) if isinstance(value, dt.datetime) else value


def generate(path: str | os.PathLike[str], scale: float = 0.01, seed: int = 42) -> dict[str, int]:
    """Write a new sample SQLite database at ``path`` and return its row count per table.

    Refuses to overwrite (FileExistsError): a sample must never replace a real database.
    """
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, not {scale!r}")
    target = Path(os.fspath(path))
    with open(target, "xb"):  # atomic "create, or fail if it exists"
        pass
    try:
        conn = sqlite3.connect(target, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=DELETE")
            conn.executescript("BEGIN;\n" + SCHEMA_PATH.read_text(encoding="utf-8"))
            _Generator(conn, float(scale), seed).run()
            conn.execute("COMMIT")
            return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        finally:
            conn.close()
    except BaseException:
        target.unlink(missing_ok=True)
        Path(f"{target}-journal").unlink(missing_ok=True)
        raise
