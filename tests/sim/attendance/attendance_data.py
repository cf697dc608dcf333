"""Attendance data for the simulated school: a calendar, students, and a term of daily records
with a handful of real absence cases. Deterministic (seeded). Python 3 standard library only.

Used by the simulated HTTP service (server.py), the demo launcher (demo.py), the integration
tests and the benchmark (scripts/bench-attendance)."""
import csv
import datetime as dt
import io
import random

CALENDAR_ROWS = [
    ("term", "2026-09-01", "2027-01-22", "Autumn 2026"),
    ("holiday", "2026-10-01", "2026-10-07", "National Day"),
    ("makeup", "2026-10-10", "", "Make-up for National Day"),
    ("holiday", "2027-01-01", "", "New Year"),
]
# The benchmark's school year: 180 school days from 2026-09-01.
YEAR_CALENDAR_ROWS = [
    ("term", "2026-09-01", "2027-07-09", "School year 2026-2027"),
    ("holiday", "2026-10-01", "2026-10-07", "National Day"),
    ("makeup", "2026-10-10", "", "Make-up for National Day"),
    ("holiday", "2027-01-25", "2027-02-26", "Winter break"),
]
RECORD_FIELDS = ["student_id", "class", "grade", "date", "status", "leave_approved", "name"]


def calendar_csv(rows=CALENDAR_ROWS):
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["kind", "start", "end", "name"])
    w.writerows(rows)
    return out.getvalue()


def school_days(rows=CALENDAR_ROWS, until=None):
    """The school days of the calendar's terms (weekdays, minus holidays, plus make-ups)."""
    d = dt.date.fromisoformat
    holidays, makeups, terms = set(), set(), []
    for kind, start, end, _ in rows:
        a, b = d(start), d(end or start)
        if kind == "term":
            terms.append((a, b))
            continue
        target = holidays if kind == "holiday" else makeups
        while a <= b:
            target.add(a)
            a += dt.timedelta(days=1)
    days = []
    for a, b in terms:
        while a <= b:
            if (a in makeups or (a.weekday() < 5 and a not in holidays)) and (until is None or a <= until):
                days.append(a)
            a += dt.timedelta(days=1)
    return days


def fake_national_id(rng):
    """18 characters shaped like a national ID number: the importer must drop these."""
    return "5309" + "".join(rng.choice("0123456789") for _ in range(13)) + rng.choice("0123456789X")


SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = "伟芳娜敏静丽强磊洋艳勇军杰娟涛明超秀霞平刚"


class School:
    """Students in classes of ~40 (grades 1-6 for a primary school)."""

    def __init__(self, students=600, seed=7, per_class=40):
        rng = random.Random(seed)
        self.students = []
        for i in range(students):
            grade = 1 + (i // per_class) % 6
            cls = f"{grade}-{i // (per_class * 6) + 1}"
            name = rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN)
            self.students.append({"student_id": f"2026{i + 1:04d}", "class": cls, "grade": str(grade),
                                  "name": name, "id_card": fake_national_id(rng)})


def term_records(school, days, seed=11, absent_rate=0.02, scripted=None):
    """One record per student per school day. `scripted` maps student index -> {date: (status,
    approved)} to plant real cases; everything else is present, with random single absences,
    lates and approved leave that never make a run of 3."""
    rng = random.Random(seed)
    scripted = scripted or {}
    for idx, s in enumerate(school.students):
        plan = scripted.get(idx, {})
        prev_absent = 0
        for day in days:
            iso = day.isoformat()
            if iso in plan:
                status, approved = plan[iso]
            else:
                r = rng.random()
                if r < absent_rate and prev_absent < 1:
                    status, approved = "absent", "no"
                elif r < absent_rate * 2:
                    status, approved = "late", "no"
                elif r < absent_rate * 2.5:
                    status, approved = "leave", "yes"
                else:
                    status, approved = "present", "no"
            prev_absent = prev_absent + 1 if status == "absent" else 0
            yield {"student_id": s["student_id"], "class": s["class"], "grade": s["grade"], "date": iso,
                   "status": status, "leave_approved": approved, "name": s["name"], "id_card": s["id_card"]}


def demo_plan(days, today):
    """The demo's real cases, relative to the last school day before `today`:
    - student 5: absent for the last 8 school days, never contacted -> overdue case
    - student 17: absent 3 days three weeks ago, then back -> a case closed by return
    - students 42 and 43: absent the last 3 school days -> new cases, deadline not passed
    - student 99: 2 days absent, then approved leave, then present -> no case (leave)
    - student 120: absent the last 2 days -> at risk, no case yet
    """
    past = [d.isoformat() for d in days if d < today]
    plan = {5: {d: ("absent", "no") for d in past[-8:]}}
    plan[17] = {past[-16]: ("absent", "no"), past[-15]: ("absent", "no"), past[-14]: ("absent", "no"),
                past[-13]: ("present", "no")}
    plan[42] = {d: ("absent", "no") for d in past[-3:]}
    plan[43] = {d: ("absent", "no") for d in past[-3:]}
    plan[99] = {past[-6]: ("absent", "no"), past[-5]: ("absent", "no"), past[-4]: ("leave", "yes"),
                past[-3]: ("present", "no")}
    plan[120] = {d: ("absent", "no") for d in past[-2:]}
    return plan


def write_csv(path, records, encoding="utf-8", with_id_card=True):
    """A school's export: optionally with the national ID column the importer must drop."""
    fields = RECORD_FIELDS + (["id_card"] if with_id_card else [])
    with open(path, "w", encoding=encoding, newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in records:
            w.writerow(r)
