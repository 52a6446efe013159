"""The template's schedules, locally: EventBridge rules and Scheduler schedules invoking their functions,
and Secrets Manager rotation schedules running their rotation function's four steps.

`rate(N minute|minutes|hour|hours|day|days)` and `cron(min hour day-of-month month day-of-week year)` (AWS
syntax: `?`, `L`, `W`, `#`, names) are supported. Time runs on a virtual clock: `LOCAL_SCHEDULE_SCALE=60`
makes a minute last a second (for tests and demos). `LOCAL_SCHEDULES=off` stops automatic firing;
`fire(logical_id)` always runs a schedule now. The event is EventBridge's scheduled event (or the target's
constant Input when the template sets one). A rotation schedule (`AutomaticallyAfterDays` or its
ScheduleExpression) invokes the rotation function with the createSecret, setSecret, testSecret and
finishSecret events Secrets Manager sends, which the emulator's RotateSecret cannot do.
"""

from __future__ import annotations

import calendar
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from infra.local.provision import RotationSchedule, Schedule, Stack

log = logging.getLogger("infra.local.scheduler")

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$", re.IGNORECASE)
_CRON = re.compile(r"^cron\((.*)\)$", re.IGNORECASE)
_AT = re.compile(r"^at\((.*)\)$", re.IGNORECASE)
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS = {m.upper(): i for i, m in enumerate(calendar.month_abbr) if m}
_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
ROTATION_STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


class ScheduleError(ValueError):
    pass


def rate_seconds(expression: str) -> int | None:
    m = _RATE.match(expression.strip())
    if m is None:
        return None
    value, unit = int(m.group(1)), m.group(2).lower().rstrip("s")
    if value < 1:
        raise ScheduleError(f"invalid rate: {expression}")
    return value * _UNIT_SECONDS[unit]


class Cron:
    """An AWS cron expression (six fields, UTC unless a time zone is given)."""

    def __init__(self, expression: str) -> None:
        m = _CRON.match(expression.strip())
        body = m.group(1) if m else expression
        fields = body.split()
        if len(fields) != 6:
            raise ScheduleError(f"cron needs 6 fields (min hour day month weekday year): {expression}")
        self.expression = expression
        self.minutes = _field(fields[0], 0, 59)
        self.hours = _field(fields[1], 0, 23)
        self.dom_raw = fields[2].upper()
        self.months = _field(fields[3], 1, 12, _MONTHS)
        self.dow_raw = fields[4].upper()
        self.years = _field(fields[5], 1970, 2199)
        if self.dom_raw != "?" and self.dow_raw != "?" and "*" not in (self.dom_raw, self.dow_raw):
            raise ScheduleError(f"cron: day-of-month or day-of-week must be '?': {expression}")
        self._dom = (
            None
            if self.dom_raw in ("?", "*") or "L" in self.dom_raw or "W" in self.dom_raw
            else _field(self.dom_raw, 1, 31)
        )
        self._dow = (
            None
            if self.dow_raw in ("?", "*") or "L" in self.dow_raw or "#" in self.dow_raw
            else _field(self.dow_raw, 1, 7, _DAYS)
        )

    def _day_matches(self, day: datetime) -> bool:
        last = calendar.monthrange(day.year, day.month)[1]
        weekday = (day.weekday() + 1) % 7 + 1  # Python Monday=0 → AWS Sunday=1 ... Saturday=7
        if self.dom_raw not in ("?", "*"):
            if self.dom_raw == "L":
                return day.day == last
            if self.dom_raw.startswith("L-"):
                return day.day == last - int(self.dom_raw[2:])
            if self.dom_raw.endswith("W"):
                return day.day == min(int(self.dom_raw[:-1]), last)  # nearest weekday, roughly
            return self._dom is not None and day.day in self._dom
        if self.dow_raw not in ("?", "*"):
            if "#" in self.dow_raw:
                d, n = self.dow_raw.split("#")
                return weekday == _value(d, _DAYS) and (day.day - 1) // 7 + 1 == int(n)
            if self.dow_raw.endswith("L"):
                d = self.dow_raw[:-1] or "7"
                return weekday == _value(d, _DAYS) and day.day > last - 7
            return self._dow is not None and weekday in self._dow
        return True

    def next_after(self, after: datetime) -> datetime | None:
        """The first matching minute strictly after `after` (aware datetime), or None."""
        t = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(200_000):
            if t.year > max(self.years):
                return None
            if t.year not in self.years:
                t = t.replace(year=t.year + 1, month=1, day=1, hour=0, minute=0)
                continue
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
                continue
            if not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t += timedelta(minutes=1)
                continue
            return t
        return None


def _value(token: str, names: dict[str, int] | None) -> int:
    if names and token.upper() in names:
        return names[token.upper()]
    return int(token)


def _field(spec: str, low: int, high: int, names: dict[str, int] | None = None) -> frozenset[int]:
    values: set[int] = set()
    for part in spec.upper().split(","):
        step = 1
        if "/" in part:
            part, step_s = part.split("/", 1)
            step = int(step_s)
        if part in ("*", "?", ""):
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = _value(a, names), _value(b, names)
        else:
            start = _value(part, names)
            end = high if step > 1 else start
        if not (low <= start <= high and low <= end <= high):
            raise ScheduleError(f"cron value out of range {low}-{high}: {spec}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def scheduled_event(schedule: Schedule, *, account_id: str, region: str, when: datetime) -> Any:
    """What EventBridge hands the target: the template's constant Input, else a Scheduled Event."""
    if schedule.input is not None:
        return schedule.input
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events" if schedule.kind == "events" else "aws.scheduler",
        "account": account_id,
        "time": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [schedule.arn],
        "detail": {},
    }


def rotation_schedule(rotation: RotationSchedule) -> Schedule | None:
    """A secret's rotation schedule as a Schedule of kind "rotation" (its `arn` is the secret's)."""
    if rotation.function is None:
        return None
    expression = rotation.rules.get("ScheduleExpression")
    if not expression and rotation.rules.get("AutomaticallyAfterDays"):
        expression = f"rate({int(rotation.rules['AutomaticallyAfterDays'])} days)"
    if not expression:
        return None
    return Schedule(
        logical_id=rotation.logical_id,
        expression=str(expression),
        function=rotation.function,
        arn=rotation.secret_arn,
        kind="rotation",
    )


class Scheduler:
    def __init__(
        self,
        stack: Stack,
        invoke: Callable[[str, Any], Any],
        *,
        scale: float | None = None,
        enabled: bool | None = None,
    ) -> None:
        self.stack = stack
        self.invoke = invoke
        self.scale = float(scale if scale is not None else os.environ.get("LOCAL_SCHEDULE_SCALE", "1") or 1)
        if self.scale <= 0:
            raise ScheduleError("LOCAL_SCHEDULE_SCALE must be > 0")
        if enabled is None:
            enabled = os.environ.get("LOCAL_SCHEDULES", "on").lower() not in ("off", "0", "false", "no")
        self.enabled = enabled
        self.schedules = {s.logical_id: s for s in stack.schedules}
        for rotation in stack.rotations:
            schedule = rotation_schedule(rotation)
            if schedule is not None:
                self.schedules[schedule.logical_id] = schedule
        self.fired: dict[str, int] = dict.fromkeys(self.schedules, 0)
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wall0 = datetime.now(UTC)
        self._mono0 = time.monotonic()
        self._next: dict[str, datetime] = {}
        for s in self.schedules.values():  # validate every expression now: a typo fails start-up
            self._first_fire(s, self._wall0)

    # virtual clock

    def now(self) -> datetime:
        """The scheduler's clock: wall time at start plus elapsed time times the scale."""
        return self._wall0 + timedelta(seconds=(time.monotonic() - self._mono0) * self.scale)

    def _real_delay(self, when: datetime) -> float:
        return max(0.0, (when - self.now()).total_seconds() / self.scale)

    def _first_fire(self, s: Schedule, now: datetime) -> datetime | None:
        period = rate_seconds(s.expression)
        if period is not None:
            return now + timedelta(seconds=period)
        if _CRON.match(s.expression):
            tz: tzinfo = ZoneInfo(s.timezone) if s.timezone else UTC
            nxt = Cron(s.expression).next_after(now.astimezone(tz))
            return nxt.astimezone(UTC) if nxt else None
        m = _AT.match(s.expression)
        if m:
            when = datetime.fromisoformat(m.group(1)).replace(
                tzinfo=ZoneInfo(s.timezone) if s.timezone else UTC
            )
            return when if when > now else None
        raise ScheduleError(f"unsupported schedule expression {s.expression!r} ({s.logical_id})")

    def next_fire(self, logical_id: str) -> datetime | None:
        return self._next.get(logical_id)

    # lifecycle

    def start(self) -> None:
        if not self.enabled or not self.schedules:
            return
        now = self.now()
        for s in self.schedules.values():
            if s.enabled:
                nxt = self._first_fire(s, now)
                if nxt is not None:
                    self._next[s.logical_id] = nxt
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._next:
                return
            logical_id, when = min(self._next.items(), key=lambda kv: kv[1])
            delay = self._real_delay(when)
            if delay > 0:
                self._stop.wait(min(delay, 1.0))  # re-evaluate at least every second
                continue
            s = self.schedules[logical_id]
            nxt = self._following(s, when)
            if nxt is None:
                self._next.pop(logical_id, None)
            else:
                self._next[logical_id] = nxt
            self._fire_async(s, when)

    def _following(self, s: Schedule, when: datetime) -> datetime | None:
        period = rate_seconds(s.expression)
        if period is not None:
            return when + timedelta(seconds=period)
        if _CRON.match(s.expression):
            tz: tzinfo = ZoneInfo(s.timezone) if s.timezone else UTC
            nxt = Cron(s.expression).next_after(when.astimezone(tz))
            return nxt.astimezone(UTC) if nxt else None
        return None  # at(...) fires once

    def _fire_async(self, s: Schedule, when: datetime) -> None:
        with self._lock:
            if s.logical_id in self._running:
                log.warning("%s is still running; skipping the run due at %s", s.logical_id, when.isoformat())
                return
            self._running.add(s.logical_id)

        def run() -> None:
            try:
                self._invoke(s, when)
            except Exception:
                log.exception("scheduled run of %s (%s) failed", s.function, s.logical_id)
            finally:
                with self._lock:
                    self._running.discard(s.logical_id)

        threading.Thread(target=run, name=f"schedule-{s.logical_id}", daemon=True).start()

    def _invoke(self, s: Schedule, when: datetime) -> Any:
        with self._lock:
            self.fired[s.logical_id] = self.fired.get(s.logical_id, 0) + 1
        if s.kind == "rotation":
            token = str(uuid.uuid4())
            for step in ROTATION_STEPS:
                self.invoke(s.function, {"SecretId": s.arn, "ClientRequestToken": token, "Step": step})
            return {"secret_id": s.arn, "version_id": token}
        event = scheduled_event(s, account_id=self.stack.account_id, region=self.stack.region, when=when)
        return self.invoke(s.function, event)

    def fire(self, logical_id: str) -> Any:
        """Run a schedule now, in this thread; returns the handler's result (its exception propagates).

        Accepts the schedule's logical id or its function's logical id."""
        s = self.schedules.get(logical_id) or next(
            (x for x in self.schedules.values() if x.function == logical_id), None
        )
        if s is None:
            raise KeyError(logical_id)
        return self._invoke(s, self.now())
