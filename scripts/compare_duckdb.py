#!/usr/bin/env python3
"""Cross-checks `cdh unify` against a plain DuckDB SQL implementation, and times both.

Usage:
    scripts/compare_duckdb.py CONTACTS.csv PATH/TO/cdh [--workdir DIR] [--threads N]
                              [--skip-cdh] [--max-iterations N]

CONTACTS.csv is a file written by `cdh gen` (or any file with its columns). The script:

1. Computes profiles in DuckDB (in-process, from PyPI; installed into REPO/.venv on first use):
   it normalises the unify keys line_uid, display_mobile and display_email in SQL, drops
   invalid and blocked values, builds contact-key edges, runs min-label propagation (with
   pointer jumping) until no label changes, and picks a golden record per component with
   `arg_max(field, updated_at)` over non-empty values. Writes DIR/duckdb/assignments.csv and
   DIR/duckdb/profiles.csv.
2. Runs `cdh unify --keys line_uid,display_mobile,display_email --region TW CONTACTS.csv
   --out DIR/cdh`, which writes DIR/cdh/assignments.csv (`contact_id,profile_id`).
3. Compares the two partitions as sets of sets (each component named by its smallest
   contact_id), prints wall time and peak memory of each and their ratio, and exits 1 on a
   mismatch after printing a few differing components (2 if cdh fails).

The SQL rules, and why they agree with cdh on generated files:
- All fields: a value is empty after trimming spaces, or blocked when its lower-cased text is
  one of cdh's built-in placeholders (null, undefined, 0, none, n/a, na, unknown, test, ...).
- line_uid: kept as is when it matches `U` + 32 hex digits (cdh accepts either case).
- display_email: lower-cased; valid when it is `local@domain` with a dot in the domain and no
  spaces; blocked when it is one of cdh's placeholder addresses (test@test.com, na@na.com, ...).
  The generator's broken addresses (`alice@`, no `@`, `alice@gmail`) all fail this rule.
- display_mobile: the digits with separators (spaces, `-`, `(`, `)`, `.`) stripped must be an
  optional `+` and 9 to 15 digits, else the value is invalid. This simple rule stands in for
  libphonenumber: the generator writes only numbers libphonenumber accepts (TW mobiles and Taipei
  landlines, US, JP and HK mobiles) plus invalid ones that are either 4 to 7 digits (`12345`) or
  contain a letter (`09-12A`), so both reject exactly the same values. A phone whose digits (as
  typed, country code included) are one repeated digit or a run of consecutive digits, six or
  more, is blocked, as in cdh. Normal form: `+` kept; a leading national `0` becomes `+886`.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv"
KEYS = "line_uid,display_mobile,display_email"

# cdh-core/src/blocklist.rs: BUILT_IN_PLACEHOLDERS and BUILT_IN_EMAILS.
PLACEHOLDERS = [
    "null",
    "(null)",
    "undefined",
    "0",
    "none",
    "n/a",
    "#n/a",
    "na",
    "nil",
    "nan",
    "-",
    "--",
    "unknown",
    "test",
    "no",
    "not available",
]
BLOCKED_EMAILS = [
    "test@test.com",
    "test@example.com",
    "example@example.com",
    "noemail@example.com",
    "no@email.com",
    "noemail@noemail.com",
    "none@none.com",
    "na@na.com",
    "email@email.com",
]


def ensure_duckdb() -> None:
    """Imports duckdb, or re-runs this script in REPO/.venv with duckdb installed there."""
    try:
        import duckdb  # noqa: F401

        return
    except ImportError:
        pass
    python = VENV / "bin" / "python"
    if os.environ.get("CDH_COMPARE_IN_VENV"):
        sys.exit("duckdb is still missing inside " + str(VENV))
    if not python.exists():
        print(f"creating {VENV}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import duckdb"], check=False, capture_output=True)
    if probe.returncode != 0:
        print("installing duckdb into the venv", file=sys.stderr)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "duckdb"], check=True)
    os.environ["CDH_COMPARE_IN_VENV"] = "1"
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])


def sql_list(values: list[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def phone_key(v: str) -> str:
    """SQL for the E.164-like key of trimmed raw phone `v`, NULL when invalid or blocked."""
    stripped = f"regexp_replace({v}, '[\\s().-]', '', 'g')"
    digits = f"regexp_replace({v}, '[^0-9]', '', 'g')"
    return f"""CASE
        WHEN NOT regexp_full_match({stripped}, '\\+?[0-9]{{9,15}}') THEN NULL
        WHEN length({digits}) >= 6 AND (
            replace({digits}, left({digits}, 1), '') = ''
            OR contains('01234567890123456789', {digits})
            OR contains('98765432109876543210', {digits})) THEN NULL
        WHEN left({stripped}, 1) = '+' THEN {stripped}
        WHEN left({stripped}, 1) = '0' THEN '+886' || substr({stripped}, 2)
        ELSE '+886' || {stripped}
    END"""


def run_duckdb(con, csv_path: Path, out_dir: Path, max_iterations: int) -> dict:
    """Builds components and golden records in DuckDB; returns timings and counts."""
    t0 = time.perf_counter()
    timings = {}
    con.execute(
        """CREATE TABLE contacts AS
           SELECT row_number() OVER () AS rid, *
           FROM read_csv(?, header = true, all_varchar = true, delim = ',', quote = '"',
                         escape = '"')""",
        [str(csv_path)],
    )
    timings["load"] = time.perf_counter() - t0

    t = time.perf_counter()
    placeholders = sql_list(PLACEHOLDERS)
    con.execute(
        f"""CREATE TABLE edges AS
        WITH raw AS (
            SELECT rid, 'u' AS field, trim(line_uid) AS v FROM contacts
            UNION ALL SELECT rid, 'p', trim(display_mobile) FROM contacts
            UNION ALL SELECT rid, 'e', trim(display_email) FROM contacts
        ), live AS (
            SELECT * FROM raw
            WHERE v IS NOT NULL AND v <> '' AND lower(v) NOT IN ({placeholders})
        ), keyed AS (
            SELECT rid, field || ':' || CASE field
                WHEN 'u' THEN CASE WHEN regexp_full_match(v, 'U[0-9a-fA-F]{{32}}') THEN v END
                WHEN 'e' THEN CASE
                    WHEN regexp_full_match(v, '[^@\\s]+@[^@\\s]+\\.[^@\\s]+')
                         AND lower(v) NOT IN ({sql_list(BLOCKED_EMAILS)}) THEN lower(v) END
                ELSE {phone_key("v")}
            END AS k
            FROM live
        ), ids AS (
            SELECT k, row_number() OVER () AS kid FROM (SELECT DISTINCT k FROM keyed WHERE k IS NOT NULL)
        )
        SELECT keyed.rid, ids.kid FROM keyed JOIN ids USING (k)"""
    )
    timings["normalise"] = time.perf_counter() - t

    # Min-label propagation over contact -> key -> contact, then pointer jumping (a label is
    # itself a contact; take that contact's label) so long chains converge in few rounds.
    t = time.perf_counter()
    con.execute("CREATE TABLE lbl AS SELECT rid, rid AS label FROM contacts")
    iterations = 0
    while True:
        iterations += 1
        con.execute(
            """CREATE OR REPLACE TABLE lbl_next AS
            WITH key_min AS (
                SELECT e.kid, min(l.label) AS m FROM edges e JOIN lbl l USING (rid) GROUP BY e.kid
            ), contact_min AS (
                SELECT e.rid, min(k.m) AS m FROM edges e JOIN key_min k USING (kid) GROUP BY e.rid
            ), stepped AS (
                SELECT l.rid, least(l.label, coalesce(c.m, l.label)) AS label
                FROM lbl l LEFT JOIN contact_min c USING (rid)
            )
            SELECT s.rid, least(s.label, j.label) AS label
            FROM stepped s JOIN stepped j ON j.rid = s.label"""
        )
        changed = con.execute(
            "SELECT count(*) FROM lbl JOIN lbl_next USING (rid) WHERE lbl.label <> lbl_next.label"
        ).fetchone()[0]
        con.execute("DROP TABLE lbl")
        con.execute("ALTER TABLE lbl_next RENAME TO lbl")
        if changed == 0:
            break
        if iterations >= max_iterations:
            sys.exit(f"label propagation did not settle in {max_iterations} rounds")
    timings["components"] = time.perf_counter() - t

    # Golden records: per field, the value of the latest-updated contact that has one
    # (updated_at is RFC 3339 UTC of one fixed width, so text order is time order).
    t = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    con.execute(
        """CREATE TABLE assigned AS
        SELECT c.*, min(c.contact_id) OVER (PARTITION BY l.label) AS profile_id
        FROM contacts c JOIN lbl l USING (rid)"""
    )

    def latest(field: str) -> str:
        return f"arg_max({field}, updated_at) FILTER (WHERE trim({field}) <> '') AS {field}"

    fields = [
        "display_name",
        "gender",
        "birthday",
        "display_mobile",
        "display_email",
        "customer_id",
        "connect_id",
        "line_uid",
    ]
    con.execute(
        f"""COPY (
            SELECT profile_id, count(*) AS n_contacts,
                   string_agg(DISTINCT channel, ';' ORDER BY channel) AS channels,
                   {", ".join(latest(f) for f in fields)},
                   max(updated_at) AS updated_at
            FROM assigned GROUP BY profile_id ORDER BY profile_id
        ) TO {sql_list([str(out_dir / "profiles.csv")])} (HEADER, DELIMITER ',')"""
    )
    con.execute(
        f"""COPY (SELECT contact_id, profile_id FROM assigned ORDER BY rid)
            TO {sql_list([str(out_dir / "assignments.csv")])} (HEADER, DELIMITER ',')"""
    )
    timings["golden+write"] = time.perf_counter() - t
    counts = con.execute(
        "SELECT count(*), count(DISTINCT profile_id), (SELECT count(*) FROM edges) FROM assigned"
    ).fetchone()
    return {
        "seconds": time.perf_counter() - t0,
        "timings": timings,
        "iterations": iterations,
        "contacts": counts[0],
        "profiles": counts[1],
        "edges": counts[2],
    }


def run_cdh(cdh: str, csv_path: Path, out_dir: Path, threads: int | None) -> dict:
    """Runs `cdh unify`; wall time measured here, peak RSS by /usr/bin/time.

    Without /usr/bin/time, falls back to the child's rusage, an upper bound only: a child
    forked from this process starts with this process's (DuckDB-sized) high-water mark.
    """
    cmd = [cdh, "unify", "--keys", KEYS, "--region", "TW", str(csv_path), "--out", str(out_dir)]
    if threads:
        cmd += ["--threads", str(threads)]
    print("$ " + " ".join(cmd), file=sys.stderr)
    timer = Path("/usr/bin/time")
    report = out_dir.parent / "cdh-time.txt"
    if timer.exists():
        cmd = [str(timer), "-f", "%M", "-o", str(report), *cmd]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak_kib, exact = usage.ru_maxrss, False
    if timer.exists() and report.exists():
        last = report.read_text().strip().splitlines()[-1:]
        if last and last[0].isdigit():
            peak_kib, exact = int(last[0]), True
    return {"seconds": seconds, "peak_kib": peak_kib, "exact": exact, "code": proc.returncode}


def compare(con, cdh_assignments: Path, limit: int = 5) -> int:
    """Compares the partitions in DuckDB; prints up to `limit` differing components."""
    con.execute(
        """CREATE TABLE cdh AS SELECT contact_id,
               min(contact_id) OVER (PARTITION BY profile_id) AS canon
           FROM read_csv(?, header = true, all_varchar = true)""",
        [str(cdh_assignments)],
    )
    missing = con.execute(
        """SELECT count(*) FILTER (WHERE c.contact_id IS NULL),
                  count(*) FILTER (WHERE a.contact_id IS NULL)
           FROM assigned a FULL JOIN cdh c USING (contact_id)"""
    ).fetchone()
    if missing != (0, 0):
        print(
            f"contact sets differ: {missing[0]} contacts missing from cdh's output, "
            f"{missing[1]} in cdh's output but not in the input"
        )
    con.execute(
        """CREATE TABLE diff AS SELECT a.contact_id, a.profile_id AS duck, c.canon AS cdh
           FROM assigned a JOIN cdh c USING (contact_id) WHERE a.profile_id <> c.canon"""
    )
    n_diff = con.execute("SELECT count(*) FROM diff").fetchone()[0]
    if n_diff == 0 and missing == (0, 0):
        return 0
    print(f"PARTITION MISMATCH: {n_diff} contacts are in components that differ")
    samples = con.execute(f"SELECT DISTINCT duck FROM diff ORDER BY duck LIMIT {limit}").fetchall()
    for (duck,) in samples:
        print(f"\ncomponent {duck}:")
        rows = con.execute(
            """SELECT a.contact_id, c.canon, a.line_uid, a.display_mobile, a.display_email
               FROM assigned a LEFT JOIN cdh c USING (contact_id)
               WHERE a.profile_id = ? OR c.canon IN (SELECT canon FROM cdh WHERE contact_id = ?)
               ORDER BY a.contact_id LIMIT 20""",
            [duck, duck],
        ).fetchall()
        print(f"  {'contact':<12} {'cdh component':<14} line_uid / phone / email (duckdb: {duck})")
        for cid, canon, uid, phone, email in rows:
            print(f"  {cid:<12} {canon!s:<14} {uid or ''} | {phone or ''} | {email or ''}")
    return 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("csv", type=Path, help="contact file written by `cdh gen`")
    ap.add_argument("cdh", help="path to the cdh binary")
    ap.add_argument("--workdir", type=Path, help="output folder (default: CSV stem + -compare)")
    ap.add_argument("--threads", type=int, help="threads for both (default: all cores)")
    ap.add_argument("--skip-cdh", action="store_true", help="run the DuckDB half only")
    ap.add_argument("--max-iterations", type=int, default=100)
    args = ap.parse_args()
    ensure_duckdb()
    import duckdb

    workdir = args.workdir or args.csv.with_name(args.csv.stem + "-compare")
    con = duckdb.connect()
    if args.threads:
        con.execute(f"SET threads = {args.threads}")
    con.execute("SET preserve_insertion_order = false")

    base_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    duck = run_duckdb(con, args.csv, workdir / "duckdb", args.max_iterations)
    duck_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    phases = ", ".join(f"{k} {v:.2f}s" for k, v in duck["timings"].items())
    print(
        f"duckdb {duckdb.__version__}: {duck['contacts']:,} contacts -> {duck['profiles']:,} "
        f"profiles ({duck['edges']:,} contact-key edges, {duck['iterations']} rounds)"
    )
    print(
        f"duckdb: {duck['seconds']:.2f} s ({phases}); peak RSS of this process "
        f"{duck_kib / 1024:.0f} MiB (before DuckDB: {base_kib / 1024:.0f} MiB)"
    )
    if args.skip_cdh:
        return 0

    cdh = run_cdh(args.cdh, args.csv, workdir / "cdh", args.threads)
    if cdh["code"] != 0:
        print(f"cdh unify failed with exit code {cdh['code']}")
        return 2
    bound = "" if cdh["exact"] else " (at most; /usr/bin/time is missing)"
    print(f"cdh:    {cdh['seconds']:.2f} s; peak RSS {cdh['peak_kib'] / 1024:.0f} MiB{bound}")
    print(
        f"ratio duckdb/cdh: time {duck['seconds'] / cdh['seconds']:.1f}x, "
        f"peak memory {duck_kib / max(cdh['peak_kib'], 1):.1f}x"
    )
    status = compare(con, workdir / "cdh" / "assignments.csv")
    if status == 0:
        print(f"partitions agree: {duck['profiles']:,} profiles")
    return status


if __name__ == "__main__":
    sys.exit(main())
