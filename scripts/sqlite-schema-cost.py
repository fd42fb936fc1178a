#!/usr/bin/env python3
"""Instructions per message of a queue's SQL on SQLite, for Sluice's messages table and the
alternatives docs/benchmarks.md weighs ("Where it waits, and what the schema alternatives would
buy"), counted with `valgrind --tool=callgrind` on the `sqlite3` shell.

Each variant inserts, leases and deletes batches of 100 messages of 256 bytes with
`synchronous=OFF`, so only CPU counts; the count is taken at two sizes and differenced, so the
shell's start-up and the schema's creation cancel out. Needs python3, sqlite3 and valgrind:

    scripts/sqlite-schema-cost.py               # every variant
    scripts/sqlite-schema-cost.py sluice plain  # some of them
"""

import os
import subprocess
import sys
import tempfile

BATCH = 100
VARIANTS = {
    # name: (queue column type, messages_by_queue, lease writes an indexed column)
    "sluice": ("TEXT", True, True),
    "int_queue": ("INTEGER", True, True),
    "no_by_queue": ("TEXT", False, True),
    "lease_outside_indexes": ("TEXT", True, False),
    "all_three": ("INTEGER", False, False),
}
PLAIN = ("plain", "contract_minimum")


def ids(batch):
    return ",".join(str(batch * BATCH + i) for i in range(1, BATCH + 1))


def rows(queue):
    return (
        f"SELECT {queue}, zeroblob(256), 0, {{now}}, {{now}}, 5 FROM (WITH RECURSIVE c(x) AS "
        f"(SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {BATCH}) SELECT x FROM c)"
    )


def sluice_script(variant, batches):
    queue_type, by_queue, moves = VARIANTS[variant]
    queue = "7" if queue_type == "INTEGER" else "'bench-queue-name-0001'"
    out = [
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;",
        f"""CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, queue {queue_type} NOT NULL,
            body BLOB NOT NULL, attributes TEXT, attempt INTEGER NOT NULL DEFAULT 0,
            enqueued_at INTEGER NOT NULL, visible_at INTEGER NOT NULL, lease_id INTEGER,
            last_error TEXT, source_queue TEXT, priority INTEGER NOT NULL DEFAULT 4,
            group_key TEXT, lane INTEGER NOT NULL DEFAULT 5, first_leased_at INTEGER,
            dead_letter_reason TEXT, leased_until INTEGER);""",
        "CREATE INDEX messages_by_queue ON messages(queue);" if by_queue else "",
        "CREATE INDEX messages_by_lane ON messages(queue, lane, visible_at, id);",
        "CREATE INDEX messages_by_group ON messages(queue, group_key, id) WHERE group_key IS NOT NULL;",
        "CREATE INDEX messages_by_reason ON messages(queue, dead_letter_reason, id) "
        "WHERE dead_letter_reason IS NOT NULL;",
    ]
    insert = "INSERT INTO messages (queue, body, attempt, enqueued_at, visible_at, lane) " + rows(queue)
    for b in range(batches):
        now = 1000 + b
        out.append(f"BEGIN; {insert.format(now=now)}; COMMIT;")
        if moves:
            lease = f"lease_id = {b + 1}, visible_at = {now + 30000}"
            visible = ""
        else:
            lease = f"lease_id = {b + 1}, leased_until = {now + 30000}"
            visible = f" AND (lease_id IS NULL OR leased_until <= {now})"
        out.append(
            f"BEGIN; UPDATE messages SET {lease}, attempt = attempt + 1, "
            f"first_leased_at = coalesce(first_leased_at, {now}) WHERE id IN (SELECT id FROM messages "
            f"WHERE queue = {queue} AND lane = 5 AND visible_at <= {now}{visible} "
            f"ORDER BY visible_at, id LIMIT {BATCH}); COMMIT;"
        )
        out.append(
            f"BEGIN; DELETE FROM messages WHERE lease_id = {b + 1} AND queue = {queue} "
            f"AND id IN ({ids(b)}); COMMIT;"
        )
    return "\n".join(out)


def plain_script(variant, batches):
    out = [
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;",
        "CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL, "
        "attempt INTEGER NOT NULL DEFAULT 0, lease_id INTEGER, visible_at INTEGER);",
    ]
    insert = "INSERT INTO messages (body, visible_at) " + rows("NULL").replace(
        "SELECT NULL, zeroblob(256), 0, {now}, {now}, 5", "SELECT zeroblob(256), {now}"
    )
    for b in range(batches):
        now = 1000 + b
        out.append(f"BEGIN; {insert.format(now=now)}; COMMIT;")
        if variant == "contract_minimum":
            out.append(
                f"BEGIN; UPDATE messages SET lease_id = {b + 1}, visible_at = {now + 30000}, "
                f"attempt = attempt + 1 WHERE id IN (SELECT id FROM messages WHERE id > {b * BATCH} "
                f"ORDER BY id LIMIT {BATCH}); COMMIT;"
            )
        out.append(f"BEGIN; DELETE FROM messages WHERE id IN ({ids(b)}); COMMIT;")
    return "\n".join(out)


def instructions(variant, batches):
    script = plain_script(variant, batches) if variant in PLAIN else sluice_script(variant, batches)
    with tempfile.TemporaryDirectory() as dir:
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", "sqlite3",
             os.path.join(dir, "t.db")],
            input=script, capture_output=True, text=True, check=True,
        )
    for line in run.stderr.splitlines():
        if "Collected :" in line:
            return int(line.split(":")[-1])
    raise SystemExit(f"no instruction count from callgrind for {variant}:\n{run.stderr}")


def main():
    names = sys.argv[1:] or [*PLAIN, *VARIANTS]
    for name in names:
        if name not in VARIANTS and name not in PLAIN:
            raise SystemExit(f"unknown variant {name}; choose from {', '.join([*PLAIN, *VARIANTS])}")
    small, large = 20, 220
    for name in names:
        per_message = (instructions(name, large) - instructions(name, small)) / ((large - small) * BATCH)
        print(f"{name:24} {per_message / 1000:6.1f} k instructions per message")


if __name__ == "__main__":
    main()
