"""The MySQL drivers our users run, through Tidepool: the engine's acceptance scenarios.

Usage: mysql_clients.py SCENARIO HOST PORT [ARGS...]
Each scenario raises (non-zero exit, traceback) on any wrong answer and prints "ok <details>".
"""

import sys
import threading
import time

import MySQLdb
import mysql.connector
import pymysql
import sqlalchemy
from sqlalchemy import text

from common import must, run_threads

HOST, PORT = None, None
USER, PASSWORD, DB = "app", "app-secret", "tidepool_test"



def engine(driver="pymysql", **kw):
    url = f"mysql+{driver}://{USER}:{PASSWORD}@{HOST}:{PORT}/{DB}"
    return sqlalchemy.create_engine(url, **kw)


def connect(driver, **kw):
    args = dict(host=HOST, port=PORT, user=USER, password=PASSWORD, database=DB, **kw)
    if driver == "pymysql":
        return pymysql.connect(**args)
    if driver == "mysqldb":
        return MySQLdb.connect(**args)
    return mysql.connector.connect(**args)


DRIVERS = ["pymysql", "mysqldb", "connector"]


def setup(_args):
    c = connect("pymysql", autocommit=True)
    cur = c.cursor()
    cur.execute("CREATE TABLE IF NOT EXISTS load_rows (id INT AUTO_INCREMENT PRIMARY KEY, client INT, n INT)")
    cur.execute("CREATE TABLE IF NOT EXISTS ids (id INT AUTO_INCREMENT PRIMARY KEY, who VARCHAR(32))")
    cur.execute("CREATE TABLE IF NOT EXISTS iso (id INT PRIMARY KEY, v VARCHAR(32))")
    for db in ("tidepool_s0", "tidepool_s1", "tidepool_s2"):
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {db}")
    print("ok setup")


def load(args):
    """N SQLAlchemy clients x M transactions; each transaction sees its own writes."""
    clients, transactions = int(args[0]), int(args[1])
    start = threading.Barrier(clients)
    too_many = []

    def client(i):
        e = engine(pool_size=1, max_overflow=0, pool_timeout=60)
        start.wait()
        try:
            for n in range(transactions):
                with e.begin() as conn:
                    conn.execute(text("INSERT INTO load_rows (client, n) VALUES (:c, :n)"), {"c": i, "n": n})
                    mine = conn.execute(text("SELECT COUNT(*) FROM load_rows WHERE client = :c"), {"c": i}).scalar()
                    assert mine == n + 1, (i, n, mine)
        except sqlalchemy.exc.OperationalError as err:
            if "1040" in str(err):
                too_many.append(i)
                return
            raise
        finally:
            e.dispose()

    errors = run_threads(clients, client)
    print(f"clients={clients} transactions={transactions} errors={len(errors)} too_many_connections={len(too_many)}")
    must(errors)
    if too_many:
        print(f"too-many-connections {len(too_many)}")
        sys.exit(3)
    print("ok load")


def upstream_connections(mariadb_port):
    """The app user's connections as MariaDB itself counts them (asked directly, as root)."""
    root = pymysql.connect(host=HOST, port=mariadb_port, user="root", password="root-secret")
    cur = root.cursor()
    cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'app'")
    count = cur.fetchone()[0]
    root.close()
    return count


def idle_engines(args):
    """30 engines each hold a connection idle after a first query: the upstream sees no more
    than max_upstream connections, so nothing is pinned; then all query again."""
    n, mariadb_port, max_upstream = int(args[0]), int(args[1]), int(args[2])
    engines = [engine(pool_size=1, max_overflow=0) for _ in range(n)]
    held = []
    for e in engines:
        conn = e.connect()
        assert conn.execute(text("SELECT @@sql_mode")).scalar() is not None
        conn.commit()
        held.append(conn)
    upstream = upstream_connections(mariadb_port)
    assert upstream <= max_upstream, f"{n} idle engines hold {upstream} upstream connections (max {max_upstream})"
    for conn in held:
        assert conn.execute(text("SELECT 2")).scalar() == 2
        conn.commit()
    for conn in held:
        conn.close()
    print(f"ok idle_engines upstream={upstream}")


def own_state(args):
    """Concurrent clients on few upstreams each keep their own replayable state."""
    n, rounds = int(args[0]), int(args[1])
    zones = ["+01:00", "+02:00", "-05:00", "+09:30"]
    modes = ["ANSI_QUOTES", "STRICT_TRANS_TABLES", "NO_ZERO_DATE", ""]
    charsets = ["utf8mb4", "latin1"]

    def client(i):
        driver = DRIVERS[i % 3]
        c = connect(driver)
        cur = c.cursor()
        tz, mode, cs, db = zones[i % 4], modes[(i // 4) % 4], charsets[i % 2], f"tidepool_s{i % 3}"
        autocommit = i % 2
        cur.execute(f"SET time_zone = '{tz}'")
        cur.execute(f"SET sql_mode = '{mode}'")
        cur.execute(f"SET NAMES {cs}")
        cur.execute(f"USE {db}")
        cur.execute(f"SET autocommit = {autocommit}")
        for _ in range(rounds):
            cur.execute("SELECT @@time_zone, @@sql_mode, @@character_set_client, DATABASE(), @@autocommit")
            got = tuple(cur.fetchone())
            want = (tz, mode, cs, db, autocommit)
            assert got == want, f"client {i} ({driver}) sees {got}, expected {want}"
            if not autocommit:
                cur.execute("ROLLBACK")
        c.close()

    must(run_threads(n, client))
    print("ok own_state")


def user_variables(args):
    """User variables pin: each client keeps its own through later statements."""
    n = int(args[0])

    def client(i):
        c = connect(DRIVERS[i % 3], autocommit=True)
        cur = c.cursor()
        cur.execute(f"SET @mine = {i}")
        for _ in range(5):
            cur.execute("SELECT COUNT(*) FROM ids")
            cur.fetchall()
            cur.execute("SELECT @mine")
            assert cur.fetchone()[0] == i, f"client {i} lost its user variable"
        c.close()

    must(run_threads(n, client))
    print("ok user_variables")


def temp_tables_locks_visibility(_args):
    a = connect("pymysql", autocommit=True)
    b = connect("mysqldb", autocommit=True)
    ca, cb = a.cursor(), b.cursor()
    ca.execute("CREATE TEMPORARY TABLE scratch (v INT)")
    ca.execute("INSERT INTO scratch VALUES (42)")
    for _ in range(3):
        cb.execute("SELECT 1")  # b runs meanwhile, possibly on other upstreams
        ca.execute("SELECT v FROM scratch")
        assert ca.fetchone()[0] == 42, "the temporary table lives for its client"
    try:
        cb.execute("SELECT v FROM scratch")
        raise AssertionError("another client saw a temporary table")
    except MySQLdb.ProgrammingError as e:
        assert e.args[0] == 1146, e

    ca.execute("SELECT GET_LOCK('tidepool-job', 0)")
    assert ca.fetchone()[0] == 1
    cb.execute("SELECT GET_LOCK('tidepool-job', 0)")
    assert cb.fetchone()[0] == 0, "GET_LOCK by one client blocks another's"
    ca.execute("SELECT RELEASE_LOCK('tidepool-job')")
    cb.execute("SELECT GET_LOCK('tidepool-job', 0)")
    assert cb.fetchone()[0] == 1
    cb.execute("SELECT RELEASE_LOCK('tidepool-job')")

    ca.execute("DELETE FROM iso")
    ca.execute("BEGIN")
    ca.execute("INSERT INTO iso VALUES (1, 'uncommitted')")
    cb.execute("SELECT COUNT(*) FROM iso")
    assert cb.fetchone()[0] == 0, "uncommitted rows stay invisible"
    ca.execute("SELECT COUNT(*) FROM iso")
    assert ca.fetchone()[0] == 1, "a transaction sees its own writes"
    ca.execute("ROLLBACK")
    ca.execute("SELECT COUNT(*) FROM iso")
    assert ca.fetchone()[0] == 0
    print("ok temp_tables_locks_visibility")


def last_insert_id(args):
    n, inserts = int(args[0]), int(args[1])

    def client(i):
        c = connect(DRIVERS[i % 3], autocommit=True)
        cur = c.cursor()
        for _ in range(inserts):
            cur.execute("INSERT INTO ids (who) VALUES (%s)", (f"c{i}",))
            mine = cur.lastrowid
            cur.execute("SELECT LAST_INSERT_ID()")
            got = cur.fetchone()[0]
            assert got == mine, f"client {i}: LAST_INSERT_ID() = {got}, its insert was {mine}"
            cur.execute("SELECT who FROM ids WHERE id = LAST_INSERT_ID()")
            assert cur.fetchone()[0] == f"c{i}"
        c.close()

    must(run_threads(n, client))
    print("ok last_insert_id")


def counters(args):
    """ROW_COUNT() and FOUND_ROWS() are each client's own, though its statements move between
    upstream connections that other clients use in between."""
    n = int(args[0])

    def client(i):
        c = connect(DRIVERS[i % 3], autocommit=True)
        cur = c.cursor()
        for k in range(1, 6):
            cur.execute("INSERT INTO ids (who) VALUES " + ", ".join(["(%s)"] * k), [f"rc{i}"] * k)
            cur.execute("SELECT ROW_COUNT()")
            assert cur.fetchone()[0] == k, f"client {i}: ROW_COUNT() after inserting {k} rows"
            cur.execute("SELECT id FROM ids WHERE who = %s LIMIT %s", (f"rc{i}", k))
            assert len(cur.fetchall()) == k
            cur.execute("SELECT FOUND_ROWS() AS found")
            assert cur.fetchone()[0] == k, f"client {i}: FOUND_ROWS() after a {k}-row SELECT"
        c.close()

    must(run_threads(n, client))
    print("ok counters")


def change_user(_args):
    """COM_CHANGE_USER: another configured user, a fresh session (nothing of the old one)."""
    c = connect("mysqldb")
    cur = c.cursor()
    cur.execute("SET @x = 7")
    cur.execute("SET time_zone = '+03:00'")
    cur.execute("CREATE TEMPORARY TABLE gone (v INT)")
    c.change_user("reporter", "reporter-secret", "tidepool_s1")
    cur = c.cursor()
    cur.execute("SELECT @x, @@time_zone = @@global.time_zone, DATABASE()")
    assert cur.fetchone() == (None, 1, "tidepool_s1")
    try:
        cur.execute("SELECT * FROM tidepool_test.gone")
        raise AssertionError("the old session's temporary table survived COM_CHANGE_USER")
    except MySQLdb.ProgrammingError as e:
        assert e.args[0] == 1146, e
    try:
        c.change_user("reporter", "wrong", "tidepool_test")
        raise AssertionError("a wrong password was accepted")
    except MySQLdb.OperationalError as e:
        assert e.args[0] == 1045, e
    print("ok change_user")


def prepared_multiplexed(args):
    """Clients holding server-side prepared statements (mysql-connector, prepared=True) share a
    few upstream connections: statements are re-prepared where each execute runs."""
    n, rounds = int(args[0]), int(args[1])
    start = threading.Barrier(n)

    def client(i):
        c = connect("connector", autocommit=True)
        cur = c.cursor(prepared=True)
        start.wait()
        for j in range(rounds):
            cur.execute("SELECT ?, CONCAT(?, '-x')", (i, f"c{i}r{j}"))
            assert cur.fetchall() == [(i, f"c{i}r{j}-x")], f"client {i} round {j}"
            cur.execute("INSERT INTO ids (who) VALUES (?)", (f"p{i}.{j}",))
            mine = cur.lastrowid
            cur.execute("SELECT who FROM ids WHERE id = ?", (mine,))
            assert cur.fetchall() == [(f"p{i}.{j}",)], f"client {i} sees another's row"
        c.close()

    must(run_threads(n, client))
    print("ok prepared_multiplexed")


SCENARIOS = {
    f.__name__: f
    for f in (setup, load, idle_engines, own_state, user_variables, temp_tables_locks_visibility, last_insert_id, counters, change_user, prepared_multiplexed)
}

if __name__ == "__main__":
    name, HOST, PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])
    SCENARIOS[name](sys.argv[4:])
