"""Randomized isolation through Tidepool: many clients, mixed drivers, few upstreams.

Usage: mysql_isolation.py HOST PORT MAX_UPSTREAM [THREADS] [STEPS]

Each client runs a random sequence of state-changing statements (seeded: TIDEPOOL_SEED, or the
time) and after every step checks its OWN session against a model it keeps: time_zone,
sql_mode, charset, autocommit, isolation level, schema, a user variable, a temporary table,
GET_LOCK locks, LAST_INSERT_ID(), its open transaction (its uncommitted rows visible, nobody
else's). Any difference is a leak: the script fails with the seed, the client and its history.

Statements that hold an upstream (transactions, autocommit off, user variables, temporary
tables, locks) need one of MAX_UPSTREAM - 1 "holder" tokens, so the pool is never exhausted by
design: one upstream always serves the clients that hold nothing. A client ends a holding
episode by committing (and, if it pinned, by reconnecting; the proxy must then reset the
upstream before anybody else gets it — the next connection checks it starts clean).
"""

import os
import random
import sys
import threading
import time
import traceback

import MySQLdb
import mysql.connector
import pymysql

HOST, PORT = None, None
USER, PASSWORD, DB = "app", "app-secret", "tidepool_test"
DRIVERS = ("pymysql", "mysqldb", "connector")
SCHEMAS = ("tidepool_test", "tidepool_iso_a", "tidepool_iso_b", "tidepool_iso_c")
TIME_ZONES = ("+00:00", "+05:30", "-03:00", "+09:00", "SYSTEM")
SQL_MODES = (
    "",
    "ANSI_QUOTES",
    "STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION",
    "STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO",
    "NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO",
    "REAL_AS_FLOAT,PAD_CHAR_TO_FULL_LENGTH",
)
CHARSETS = ("latin1", "utf8mb4")
# SERIALIZABLE is left out: its locking reads would block the other clients' inserts.
ISOLATION = {
    "READ UNCOMMITTED": "READ-UNCOMMITTED",
    "READ COMMITTED": "READ-COMMITTED",
    "REPEATABLE READ": "REPEATABLE-READ",
}
LOCKS = ("iso_lock_0", "iso_lock_1", "iso_lock_2")

# Shared bookkeeping: which row tokens may be visible to others, and who holds which lock.
BOOK = threading.Lock()
TOKENS = {}  # token -> "pending" | "committing" | "committed" | "rolledback"
LOCK_GATE = threading.Lock()  # GET_LOCK/RELEASE_LOCK + LOCK_OWNER updates happen under it
LOCK_OWNER = {}  # lock name -> thread index
CLIENTS = {}  # thread index -> Client, for reports about another client


def connect(driver):
    kw = dict(host=HOST, port=PORT, user=USER, password=PASSWORD, database=DB, autocommit=True)
    if driver == "pymysql":
        return pymysql.connect(charset="utf8mb4", read_timeout=60, write_timeout=60, **kw)
    if driver == "mysqldb":
        return MySQLdb.connect(charset="utf8mb4", read_timeout=60, write_timeout=60, **kw)
    return mysql.connector.connect(charset="utf8mb4", connection_timeout=60, **kw)


def errno_of(e):
    n = getattr(e, "errno", None)
    if isinstance(n, int) and n > 0:
        return n
    return e.args[0] if e.args and isinstance(e.args[0], int) else None


def norm(v):
    if isinstance(v, (bytes, bytearray)):
        return v.decode()
    return None if v is None else str(v)


class Leak(AssertionError):
    pass


class Client:
    """One client thread: a connection, the model of its session, and its history."""

    def __init__(self, index, seed, defaults, holders):
        self.i = index
        self.rng = random.Random(f"{seed}-{index}")
        self.driver = DRIVERS[index % len(DRIVERS)]
        self.defaults = defaults
        self.holders = holders
        self.holding = False
        self.generation = 0
        self.committed_mine = set()
        self.history = []
        self.stats = {}
        self.conn = None
        self.fresh_connection()

    # --- connection and model -------------------------------------------------------------
    def fresh_connection(self):
        if self.conn is not None:
            self.conn.close()
        self.generation += 1
        self.uid = self.i * 1000 + self.generation
        self.conn = connect(self.driver)
        d = self.defaults
        self.m = dict(
            time_zone=d["time_zone"],
            sql_mode=d["sql_mode"],
            charset="utf8mb4",
            autocommit=True,
            isolation=d["isolation"],
            schema=DB,
            user_var=None,
            temp_table=False,
            locks=set(),
            last_id=0,
            explicit_txn=False,
            pending=set(),
            pins=False,
        )
        self.note("connect")

    def note(self, what):
        self.history.append(what)
        del self.history[:-15]

    def q(self, sql, args=None):
        cur = self.conn.cursor()
        try:
            cur.execute(sql, args)
            rows = cur.fetchall() if cur.description else []
            lastrowid = cur.lastrowid
        finally:
            cur.close()
        return rows, lastrowid

    def expect(self, what, got, want):
        if got != want:
            raise Leak(f"{what}: got {got!r}, model says {want!r}")

    # --- actions --------------------------------------------------------------------------
    def take_token(self):
        if not self.holding:
            self.holders.acquire()
            self.holding = True

    def act(self):
        m = self.m
        choices = ["time_zone", "sql_mode", "names", "use", "init_db", "insert_autocommit", "noop"]
        if not m["explicit_txn"] and not m["pending"]:
            choices += ["autocommit"]
        # A transaction keeps the level it began with, and with autocommit off the checks' own
        # reads keep one open: change the level only where the next statement starts afresh.
        if not m["explicit_txn"] and m["autocommit"]:
            choices += ["isolation"]
        choices += ["user_var", "temp_table", "get_lock", "release_lock", "begin", "txn_insert"]
        choices += ["end_txn"] * 2 if (m["explicit_txn"] or m["pending"]) else []
        if self.holding:
            choices += ["end_episode"]
        action = self.rng.choice(choices)
        self.stats[action] = self.stats.get(action, 0) + 1
        getattr(self, "do_" + action)()

    def do_noop(self):
        self.note("noop")

    def do_time_zone(self):
        tz = self.rng.choice(TIME_ZONES)
        self.q(f"SET time_zone = '{tz}'")
        self.m["time_zone"] = tz
        self.note(f"SET time_zone {tz}")

    def do_sql_mode(self):
        mode = self.rng.choice(SQL_MODES)
        self.q(f"SET SESSION sql_mode = '{mode}'")
        self.m["sql_mode"] = mode
        self.note(f"SET sql_mode {mode!r}")

    def do_names(self):
        cs = self.rng.choice(CHARSETS)
        self.q(f"SET NAMES {cs}")
        self.m["charset"] = cs
        self.note(f"SET NAMES {cs}")

    def do_use(self):
        db = self.rng.choice(SCHEMAS)
        self.q(f"USE {db}")
        self.m["schema"] = db
        self.note(f"USE {db}")

    def do_init_db(self):
        db = self.rng.choice(SCHEMAS)
        if self.driver == "connector":
            self.conn.cmd_init_db(db)
        else:
            self.conn.select_db(db)
        self.m["schema"] = db
        self.note(f"COM_INIT_DB {db}")

    def do_isolation(self):
        level = self.rng.choice(list(ISOLATION))
        self.q(f"SET SESSION TRANSACTION ISOLATION LEVEL {level}")
        self.m["isolation"] = ISOLATION[level]
        self.note(f"SET SESSION TRANSACTION ISOLATION LEVEL {level}")

    def do_autocommit(self):
        on = not self.m["autocommit"] if self.rng.random() < 0.7 else self.m["autocommit"]
        if not on:
            self.take_token()
        self.q(f"SET autocommit = {1 if on else 0}")
        self.m["autocommit"] = on
        self.note(f"SET autocommit={int(on)}")

    def do_user_var(self):
        self.take_token()
        value = self.uid * 100 + len(self.history) + self.rng.randrange(100)
        if self.rng.random() < 0.5:
            self.q(f"SET @iso_v = {value}")
        else:
            self.q(f"SELECT @iso_v := {value}")
        self.m["user_var"] = str(value)
        self.m["pins"] = True
        self.note(f"@iso_v = {value}")

    def do_temp_table(self):
        self.take_token()
        if self.m["temp_table"]:
            self.q("DROP TEMPORARY TABLE tidepool_test.iso_tmp")
            self.m["temp_table"] = False
            self.note("DROP TEMPORARY TABLE")
        else:
            self.q(
                "CREATE TEMPORARY TABLE tidepool_test.iso_tmp ENGINE=MEMORY "
                f"AS SELECT {self.uid} AS owner"
            )
            self.m["temp_table"] = True
            self.note("CREATE TEMPORARY TABLE")
        self.m["pins"] = True

    def do_get_lock(self):
        self.take_token()
        free = [n for n in LOCKS if n not in self.m["locks"]]
        if not free:
            return self.do_release_lock()
        name = self.rng.choice(free)
        with LOCK_GATE:
            (got,), = self.q(f"SELECT GET_LOCK('{name}', 0)")[0]
            want = 0 if name in LOCK_OWNER else 1
            self.expect(f"GET_LOCK('{name}') (owner {LOCK_OWNER.get(name)})", int(got), want)
            if got == 1:
                LOCK_OWNER[name] = self.i
                self.m["locks"].add(name)
        self.m["pins"] = True
        self.note(f"GET_LOCK {name} -> {got}")

    def do_release_lock(self):
        if not self.m["locks"]:
            return self.do_noop()
        name = self.rng.choice(sorted(self.m["locks"]))
        with LOCK_GATE:
            (got,), = self.q(f"SELECT RELEASE_LOCK('{name}')")[0]
            self.expect(f"RELEASE_LOCK('{name}')", int(got), 1)
            del LOCK_OWNER[name]
            self.m["locks"].discard(name)
        self.note(f"RELEASE_LOCK {name}")

    def do_begin(self):
        if self.m["explicit_txn"] or self.m["pending"]:
            return self.do_txn_insert()
        self.take_token()
        self.q("BEGIN")
        self.m["explicit_txn"] = True
        self.note("BEGIN")

    def insert(self):
        token = f"t{self.uid}-{len(self.history)}-{self.rng.randrange(10**9)}"
        with BOOK:
            TOKENS[token] = "pending"
        _, rowid = self.q(
            "INSERT INTO tidepool_test.iso_rows (owner, token) VALUES (%s, %s)", (self.i, token)
        )
        self.m["last_id"] = int(rowid)
        return token

    def do_insert_autocommit(self):
        if self.m["explicit_txn"] or self.m["pending"] or not self.m["autocommit"]:
            return self.do_txn_insert()
        token = f"a{self.uid}-{len(self.history)}-{self.rng.randrange(10**9)}"
        with BOOK:
            TOKENS[token] = "committing"
        _, rowid = self.q(
            "INSERT INTO tidepool_test.iso_rows (owner, token) VALUES (%s, %s)", (self.i, token)
        )
        with BOOK:
            TOKENS[token] = "committed"
        self.committed_mine.add(token)
        self.m["last_id"] = int(rowid)
        self.note(f"INSERT (autocommit) id={rowid}")

    def do_txn_insert(self):
        if not self.m["explicit_txn"] and self.m["autocommit"]:
            return self.do_begin()
        self.take_token()
        token = self.insert()
        self.m["pending"].add(token)
        self.note(f"INSERT (in transaction) id={self.m['last_id']}")

    def do_end_txn(self):
        if not (self.m["explicit_txn"] or self.m["pending"]):
            return self.do_noop()
        commit = self.rng.random() < 0.6
        pending = self.m["pending"]
        if commit:
            with BOOK:
                for t in pending:
                    TOKENS[t] = "committing"
            self.q("COMMIT")
            with BOOK:
                for t in pending:
                    TOKENS[t] = "committed"
            self.committed_mine |= pending
        else:
            self.q("ROLLBACK")
            with BOOK:
                for t in pending:
                    TOKENS[t] = "rolledback"
        self.m["pending"] = set()
        self.m["explicit_txn"] = False
        self.note("COMMIT" if commit else "ROLLBACK")

    def do_end_episode(self):
        """Give the holder token back: end the transaction, and reconnect if pinned."""
        m = self.m
        if m["explicit_txn"] or m["pending"]:
            self.do_end_txn()
        if m["pins"]:
            for name in sorted(m["locks"]):
                with LOCK_GATE:
                    (got,), = self.q(f"SELECT RELEASE_LOCK('{name}')")[0]
                    self.expect(f"RELEASE_LOCK('{name}')", int(got), 1)
                    del LOCK_OWNER[name]
            m["locks"] = set()
            self.fresh_connection()
        elif not m["autocommit"]:
            self.q("SET autocommit = 1")
            m["autocommit"] = True
            self.note("SET autocommit=1 (end of episode)")
        self.holding = False
        self.holders.release()

    # --- the check ------------------------------------------------------------------------
    def check(self):
        m = self.m
        lock_cols = ", ".join(f"IS_USED_LOCK('{n}') <=> CONNECTION_ID()" for n in LOCKS)
        rows, _ = self.q(
            "SELECT @@session.time_zone, @@session.sql_mode, @@character_set_client, "
            "@@character_set_connection, @@character_set_results, @@autocommit, "
            "@@session.tx_isolation, DATABASE(), @iso_v, LAST_INSERT_ID(), @@in_transaction, "
            + lock_cols
        )
        r = [norm(v) for v in rows[0]]
        self.expect("time_zone", r[0], m["time_zone"])
        self.expect("sql_mode", set(filter(None, r[1].split(","))), set(filter(None, m["sql_mode"].split(","))))
        self.expect("charset (client, connection, results)", tuple(r[2:5]), (m["charset"],) * 3)
        self.expect("autocommit", r[5], "1" if m["autocommit"] else "0")
        self.expect("tx_isolation", r[6], m["isolation"])
        self.expect("DATABASE()", r[7], m["schema"])
        self.expect("@iso_v", r[8], m["user_var"])
        self.expect("LAST_INSERT_ID()", int(r[9]), m["last_id"])
        if m["autocommit"]:
            self.expect("@@in_transaction", r[10], "1" if m["explicit_txn"] else "0")
        held = {n for n, v in zip(LOCKS, r[11:]) if v == "1"}
        self.expect("locks held by this session", held, m["locks"])

        try:
            trows, _ = self.q("SELECT owner FROM tidepool_test.iso_tmp")
            temp = [int(x[0]) for x in trows]
        except Exception as e:  # noqa: BLE001 - only "no such table" is a valid answer
            if errno_of(e) != 1146:
                raise
            temp = None
        self.expect("temporary table iso_tmp", temp, [self.uid] if m["temp_table"] else None)

        # The isolation level and upstream thread in the same statement as the rows it governs.
        rows, _ = self.q(
            "SELECT owner, token, @@session.tx_isolation, CONNECTION_ID() FROM tidepool_test.iso_rows"
        )
        for row in rows[:1]:
            self.expect("tx_isolation (of the rows query)", norm(row[2]), m["isolation"])
        mine = {norm(t) for o, t, _, _ in rows if int(o) == self.i}
        self.expect("own rows (committed + own uncommitted)", mine, self.committed_mine | m["pending"])
        if m["isolation"] != "READ-UNCOMMITTED":
            foreign = [norm(t) for o, t, _, _ in rows if int(o) != self.i]
            with BOOK:
                dirty = [t for t in foreign if TOKENS.get(t) not in ("committing", "committed")]
            if dirty:
                writer = CLIENTS.get(int(dirty[0][1:].split("-")[0]) // 1000)
                about = f"; writer {writer.i} ({writer.driver}) history: {' | '.join(writer.history)}" if writer else ""
                raise Leak(
                    f"another client's uncommitted rows are visible on upstream thread {rows[0][3]}: "
                    f"{dirty[:5]}{about}"
                )

    def run(self, steps):
        for step in range(steps):
            try:
                self.act()
                self.check()
            except Exception as e:
                raise AssertionError(
                    f"client {self.i} ({self.driver}, connection {self.uid}) step {step}: {e!r}\n"
                    f"  model: { {k: v for k, v in self.m.items() if k != 'pending'} }\n"
                    f"  history: {' | '.join(self.history)}"
                ) from e
        if self.holding:
            self.do_end_episode()
        # A last fresh connection must start clean whatever the previous ones did.
        self.fresh_connection()
        self.check()
        self.conn.close()


def setup():
    conn = pymysql.connect(host=HOST, port=PORT, user=USER, password=PASSWORD, database=DB, autocommit=True)
    cur = conn.cursor()
    for db in SCHEMAS[1:]:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {db}")
    cur.execute("DROP TABLE IF EXISTS iso_rows")
    cur.execute(
        "CREATE TABLE iso_rows (id BIGINT AUTO_INCREMENT PRIMARY KEY, owner INT NOT NULL, "
        "token VARCHAR(64) NOT NULL) ENGINE=InnoDB"
    )
    cur.execute("SELECT @@session.time_zone, @@session.sql_mode, @@session.tx_isolation")
    tz, mode, iso = cur.fetchone()
    conn.close()
    return dict(time_zone=tz, sql_mode=mode, isolation=iso)


def main():
    global HOST, PORT
    HOST, PORT, max_upstream = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else 24
    steps = int(sys.argv[5]) if len(sys.argv) > 5 else 40
    seed = os.environ.get("TIDEPOOL_SEED") or str(time.time_ns())
    print(f"seed={seed} (rerun with TIDEPOOL_SEED={seed})", flush=True)
    defaults = setup()
    holders = threading.BoundedSemaphore(max(1, max_upstream - 1))
    errors, clients = [], []
    start = threading.Barrier(threads)

    def work(i):
        try:
            c = Client(i, seed, defaults, holders)
            clients.append(c)
            CLIENTS[i] = c
            start.wait(timeout=60)
            c.run(steps)
        except BaseException:  # noqa: BLE001 - every failure is reported
            errors.append(traceback.format_exc())
            start.abort()

    t0 = time.time()
    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        print(f"FAILED with seed={seed} (rerun with TIDEPOOL_SEED={seed})", file=sys.stderr)
        real = [e for e in errors if "BrokenBarrierError" not in e] or errors
        print("\n".join(real[:5]), file=sys.stderr)
        sys.exit(1)
    totals = {}
    for c in clients:
        for k, v in c.stats.items():
            totals[k] = totals.get(k, 0) + v
    reconnects = sum(c.generation for c in clients)
    print(f"ok seed={seed} clients={threads} steps={steps} connections={reconnects} "
          f"secs={time.time() - t0:.1f} actions={dict(sorted(totals.items()))}")


if __name__ == "__main__":
    main()
