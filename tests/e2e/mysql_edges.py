"""Edge cases of the MySQL engine with the real drivers (the scenarios of tests/mysql_edges.rs).

Usage: mysql_edges.py SCENARIO HOST PORT [ARGS...]
Each scenario raises (non-zero exit, traceback) on any wrong answer and prints "ok <details>".
"""

import faulthandler
import hashlib
import os
import sys
import tempfile
import threading
import time

import MySQLdb
import mysql.connector
import pymysql
import sqlalchemy
from pymysql.constants import CLIENT

HOST, PORT = None, None
USER, PASSWORD, DB = "app", "app-secret", "tidepool_test"


def pm(**kw):
    kw.setdefault("database", DB)
    kw.setdefault("autocommit", True)
    kw.setdefault("read_timeout", 30)
    kw.setdefault("connect_timeout", 10)
    kw.setdefault("user", USER)
    kw.setdefault("password", PASSWORD)
    return pymysql.connect(host=HOST, port=PORT, **kw)


def mc(**kw):
    kw.setdefault("database", DB)
    kw.setdefault("autocommit", True)
    kw.setdefault("read_timeout", 30)
    kw.setdefault("connect_timeout", 10)
    kw.setdefault("user", USER)
    kw.setdefault("password", PASSWORD)
    return MySQLdb.connect(host=HOST, port=PORT, **kw)


# The venv's connector may lack its C extension; the pure-Python protocol is then the one tested.
CONNECTOR_MODES = (True, False) if mysql.connector.HAVE_CEXT else (True,)


def cx(**kw):
    kw.setdefault("database", DB)
    kw.setdefault("autocommit", True)
    kw.setdefault("connection_timeout", 10)
    kw.setdefault("user", USER)
    kw.setdefault("password", PASSWORD)
    return mysql.connector.connect(host=HOST, port=PORT, **kw)


def errno_of(e):
    n = getattr(e, "errno", None)
    if isinstance(n, int) and n > 0:
        return n
    return e.args[0] if e.args and isinstance(e.args[0], int) else None


def expect_error(fn, errno=None, contains=()):
    """Runs fn; it must raise a driver error (with that errno, whose text has every word)."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the driver's own error classes differ
        if errno is not None:
            assert errno_of(e) == errno, f"expected error {errno}, got {errno_of(e)}: {e!r}"
        for word in contains:
            assert word in str(e), f"{word!r} not in the error: {e!r}"
        return e
    raise AssertionError(f"no error (expected {errno} {contains})")


def one(conn, sql, args=None):
    cur = conn.cursor()
    cur.execute(sql, args)
    rows = cur.fetchall()
    cur.close()
    return rows


def text(v):
    return v.decode() if isinstance(v, (bytes, bytearray)) else v


# --- multiple result sets ---------------------------------------------------------------------
def multi_results(_args):
    root = pm()
    cur = root.cursor()
    cur.execute("DROP PROCEDURE IF EXISTS two_sets")
    cur.execute(
        "CREATE PROCEDURE two_sets(IN n INT) BEGIN "
        "SELECT n AS a, 'first' AS b; "
        "SELECT n + 1 AS c UNION ALL SELECT n + 2; "
        "END"
    )
    root.close()
    for name, conn in (("pymysql", pm()), ("mysqlclient", mc())):
        for n in (10, 20):
            cur = conn.cursor()
            cur.execute(f"CALL two_sets({n})")
            first = [tuple(text(x) for x in r) for r in cur.fetchall()]
            assert first == [(n, "first")], (name, first)
            assert cur.nextset(), f"{name}: no second result set"
            second = [r[0] for r in cur.fetchall()]
            assert second == [n + 1, n + 2], (name, second)
            # The CALL's own status result, then the end.
            while cur.nextset():
                assert not cur.description, f"{name}: a third result set with columns"
            cur.close()
            assert one(conn, "SELECT 42") == ((42,),), f"{name}: connection unusable after CALL"
        conn.close()

    # mysql-connector-python: callproc + stored_results.
    conn = cx()
    cur = conn.cursor()
    cur.callproc("two_sets", (5,))
    sets = [[tuple(text(x) for x in r) for r in res.fetchall()] for res in cur.stored_results()]
    assert sets == [[(5, "first")], [(6,), (7,)]], sets
    cur.close()
    assert one(conn, "SELECT 43") == [(43,)]
    conn.close()

    # Multi-statements: PyMySQL asks for them explicitly, mysqlclient by default.
    sql = "SELECT 1 AS x; SELECT 2, 3; DO 0; SELECT 'z' UNION ALL SELECT 'y'"
    want = [[(1,)], [(2, 3)], None, [("z",), ("y",)]]
    for name, conn in (
        ("pymysql", pm(client_flag=CLIENT.MULTI_STATEMENTS)),
        ("mysqlclient", mc()),
    ):
        cur = conn.cursor()
        cur.execute(sql)
        got = []
        while True:
            got.append([tuple(text(x) for x in r) for r in cur.fetchall()] if cur.description else None)
            if not cur.nextset():
                break
        assert got == want, (name, got)
        cur.close()
        assert one(conn, "SELECT 44") == ((44,),), f"{name}: connection unusable after multi"
        conn.close()
    print("ok multi-results: CALL (2 sets) x pymysql/mysqlclient/connector, multi-statements")


# --- a 20 MiB blob ----------------------------------------------------------------------------
def big_blob(_args):
    size = 20 << 20
    conn = pm(max_allowed_packet=64 << 20, read_timeout=120, write_timeout=120)
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS edge_blobs")
    cur.execute("CREATE TABLE edge_blobs (id INT PRIMARY KEY, b LONGBLOB) ENGINE=InnoDB")
    conn.close()
    for i, (name, connect) in enumerate(
        (
            ("pymysql", lambda: pm(max_allowed_packet=64 << 20, read_timeout=120, write_timeout=120)),
            ("mysqlclient", lambda: mc(read_timeout=120, write_timeout=120)),
        )
    ):
        blob = os.urandom(size)
        digest = hashlib.sha256(blob).hexdigest()
        conn = connect()
        cur = conn.cursor()
        cur.execute("INSERT INTO edge_blobs (id, b) VALUES (%s, %s)", (i, blob))
        cur.execute("SELECT LENGTH(b), SHA2(b, 256) FROM edge_blobs WHERE id = %s", (i,))
        length, server_digest = cur.fetchone()
        assert (length, text(server_digest)) == (size, digest), (name, "server saw", length)
        cur.execute("SELECT b FROM edge_blobs WHERE id = %s", (i,))
        (back,) = cur.fetchone()
        assert len(back) == size, (name, len(back))
        assert hashlib.sha256(back).hexdigest() == digest, f"{name}: blob came back different"
        assert one(conn, "SELECT 45")[0][0] == 45
        conn.close()
    print(f"ok 20 MiB blob round trip x pymysql/mysqlclient ({size} bytes)")


# --- LOAD DATA LOCAL INFILE -------------------------------------------------------------------
def load_local(_args):
    conn = pm()
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS edge_load")
    cur.execute("CREATE TABLE edge_load (k INT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB")
    conn.close()
    rows = 60000  # ~1.3 MB: the file crosses many packets
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        for k in range(rows):
            f.write(f"{k},value-{k}-{'x' * 8}\n")
        path = f.name
    try:
        sql = f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE edge_load FIELDS TERMINATED BY ',' (k, v)"
        for name, connect in (
            ("pymysql", lambda: pm(local_infile=True)),
            ("mysqlclient", lambda: mc(local_infile=1)),
        ):
            conn = connect()
            cur = conn.cursor()
            cur.execute("DELETE FROM edge_load")
            cur.execute(sql)
            cur.execute("SELECT COUNT(*), SUM(k), MAX(v) FROM edge_load")
            count, total, _ = cur.fetchone()
            assert (count, int(total)) == (rows, rows * (rows - 1) // 2), (name, count, total)
            assert one(conn, "SELECT 46")[0][0] == 46, f"{name}: unusable after LOAD DATA"
            conn.close()

        # Without local_infile the client gets an error, not a hang, and stays usable.
        conn = pm(read_timeout=10)
        t0 = time.time()
        expect_error(lambda: conn.cursor().execute(sql))
        assert time.time() - t0 < 5, "the refusal took too long"
        assert one(conn, "SELECT 47")[0][0] == 47, "pymysql unusable after the refusal"
        conn.close()
    finally:
        os.unlink(path)
    print(f"ok LOAD DATA LOCAL INFILE ({rows} rows) x pymysql/mysqlclient; refused without local_infile")


# --- server-side prepared statements ----------------------------------------------------------
def prepared(_args):
    conn = pm()
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS edge_ps")
    cur.execute(
        "CREATE TABLE edge_ps (id INT PRIMARY KEY, name VARCHAR(32), amount DECIMAL(10,2), "
        "at DATETIME, note TEXT NULL) ENGINE=InnoDB"
    )
    conn.close()
    errors = []

    def text_side(i):
        try:
            conn = pm() if i % 2 == 0 else mc()
            for j in range(50):
                r = one(conn, "SELECT %s + %s, CONCAT('t', %s)", (i, j, j))
                assert int(r[0][0]) == i + j and text(r[0][1]) == f"t{j}", r
            conn.close()
        except Exception as e:  # noqa: BLE001
            errors.append(f"text client {i}: {e!r}")

    side = [threading.Thread(target=text_side, args=(i,)) for i in range(6)]
    for t in side:
        t.start()
    import datetime
    import decimal

    for use_pure in CONNECTOR_MODES:
        base = 1000 if use_pure else 0
        conn = cx(use_pure=use_pure)
        cur = conn.cursor(prepared=True)
        for k in range(20):
            cur.execute(
                "INSERT INTO edge_ps (id, name, amount, at, note) VALUES (?, ?, ?, ?, ?)",
                (base + k, f"n{k}", decimal.Decimal(f"{k}.25"), datetime.datetime(2024, 1, 1 + k, 12, 0, k),
                 None if k % 3 == 0 else f"note {k}"),
            )
        for k in (0, 7, 19, 4):
            cur.execute("SELECT id, name, amount, at, note FROM edge_ps WHERE id = ?", (base + k,))
            row = cur.fetchall()
            want = [(base + k, f"n{k}", decimal.Decimal(f"{k}.25"), datetime.datetime(2024, 1, 1 + k, 12, 0, k),
                     None if k % 3 == 0 else f"note {k}")]
            got = [tuple(text(x) for x in r) for r in row]
            assert got == want, (use_pure, got, want)
        cur.execute("SELECT COUNT(*) FROM edge_ps WHERE id BETWEEN ? AND ?", (base, base + 100))
        assert cur.fetchall()[0][0] == 20
        cur.close()
        # A second prepared cursor on the same connection, then plain text again.
        cur2 = conn.cursor(prepared=True)
        cur2.execute("SELECT ? * 2", (21,))
        assert cur2.fetchall()[0][0] == 42
        cur2.close()
        assert [tuple(r) for r in one(conn, "SELECT 48")] == [(48,)]
        conn.close()
    for t in side:
        t.join()
    assert not errors, errors
    print("ok prepared statements via mysql-connector (C ext and pure), text clients alongside")


# --- authentication ---------------------------------------------------------------------------
def caching_sha2(_args):
    for use_pure in CONNECTOR_MODES:
        conn = cx(auth_plugin="caching_sha2_password", use_pure=use_pure)
        assert one(conn, "SELECT CURRENT_USER()")[0][0].startswith("app@"), "logged in as app"
        conn.close()
        expect_error(
            lambda: cx(auth_plugin="caching_sha2_password", use_pure=use_pure, password="wrong"),
            errno=1045,
            contains=("Access denied",),
        )
    print("ok caching_sha2_password fast path (connector C ext and pure); wrong password 1045")


def auth_errors(_args):
    expect_error(lambda: pm(password="nope"), errno=1045, contains=("Access denied", "app"))
    expect_error(lambda: pm(user="nobody"), errno=1045, contains=("Access denied", "nobody"))
    expect_error(lambda: pm(password=""), errno=1045, contains=("Access denied",))
    expect_error(lambda: mc(password="nope"), errno=1045, contains=("Access denied",))
    expect_error(lambda: pm(database="no_such_db_here"), errno=1049, contains=("no_such_db_here",))
    expect_error(lambda: mc(database="no_such_db_here"), errno=1049)
    # The refusals took nothing with them: a good client logs in.
    assert one(pm(), "SELECT 49")[0][0] == 49
    print("ok wrong password/unknown user 1045, unknown database 1049")


def drivers(args):
    version = args[0]
    seen = {}
    c = pm()
    seen["pymysql"] = (one(c, "SELECT @@version")[0][0], c.get_server_info())
    c = mc()
    seen["mysqlclient"] = (text(one(c, "SELECT @@version")[0][0]), c.get_server_info())
    for use_pure in CONNECTOR_MODES:
        c = cx(use_pure=use_pure)
        seen[f"connector(use_pure={use_pure})"] = (text(one(c, "SELECT @@version")[0][0]), c.get_server_info())
        c.close()
    for url in ("mysql+pymysql", "mysql+mysqldb"):
        eng = sqlalchemy.create_engine(f"{url}://{USER}:{PASSWORD}@{HOST}:{PORT}/{DB}")
        with eng.connect() as conn:
            v = conn.execute(sqlalchemy.text("SELECT @@version")).scalar()
            assert conn.execute(sqlalchemy.text("SELECT 6 * 7")).scalar() == 42
            assert eng.dialect.is_mariadb, f"{url}: SQLAlchemy did not recognise MariaDB"
            seen[url] = (v, ".".join(map(str, eng.dialect.server_version_info)))
        eng.dispose()
    for name, (v, info) in seen.items():
        assert v == version, f"{name}: @@version {v!r}, MariaDB says {version!r}"
        if name.startswith("mysql+"):
            assert version.startswith(info), f"{name}: SQLAlchemy parsed {info!r} from {version!r}"
        else:
            # The greeting carries the upstream's real version (MariaDB may prefix "5.5.5-").
            assert info.removeprefix("5.5.5-") == version, f"{name}: greeting says {info!r}"
    print(f"ok every driver connects; version {version}: {seen}")


# --- a client killed mid-transaction ----------------------------------------------------------
def hold_txn(args):
    token = args[0]
    conn = pm()
    cur = conn.cursor()
    cur.execute("CREATE TABLE IF NOT EXISTS edge_killed (token VARCHAR(64)) ENGINE=InnoDB")
    cur.execute("BEGIN")
    cur.execute("INSERT INTO edge_killed VALUES (%s)", (token,))
    print("inserted", flush=True)
    time.sleep(300)


def after_kill(args):
    token = args[0]
    conn = pm(read_timeout=30)
    assert one(conn, "SELECT @@in_transaction")[0][0] == 0, "this client inherited an open transaction"
    (n,), = one(
        conn,
        "SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = CONNECTION_ID()",
    )
    assert n == 0, "the upstream connection still has an InnoDB transaction"
    assert one(conn, "SELECT COUNT(*) FROM edge_killed WHERE token = %s", (token,))[0][0] == 0, "row committed"
    cur = conn.cursor()
    cur.execute("BEGIN")
    cur.execute("INSERT INTO edge_killed VALUES (%s)", (token + "-after",))
    cur.execute("COMMIT")
    assert one(conn, "SELECT COUNT(*) FROM edge_killed WHERE token = %s", (token + "-after",))[0][0] == 1
    print("ok the killed client's transaction was rolled back; the upstream was reused cleanly")


# --- limits -----------------------------------------------------------------------------------
def exhausted(args):
    pool = args[0]
    holder, other = pm(), pm()
    assert one(other, "SELECT 1")[0][0] == 1
    hc = holder.cursor()
    hc.execute("BEGIN")
    hc.execute("SELECT 1")
    t0 = time.time()
    e = expect_error(
        lambda: one(other, "SELECT 2"),
        errno=1040,
        contains=(pool, "max_upstream", "acquire_timeout"),
    )
    waited = time.time() - t0
    assert 0.4 <= waited < 3, f"waited {waited:.2f}s for a 500ms acquire_timeout"
    # A client connecting now is refused the same way, at connect or at its first query.
    expect_error(lambda: one(pm(), "SELECT 2"), errno=1040, contains=(pool, "max_upstream"))
    hc.execute("COMMIT")
    assert one(other, "SELECT 3")[0][0] == 3, "served once the holder committed"
    print(f"ok exhausted after {waited:.2f}s: {e}")


def upstream_down(args):
    words, seen = args, []
    for attempt in range(3):
        t0 = time.time()
        e = expect_error(lambda: one(pm(connect_timeout=10, read_timeout=10), "SELECT 1"))
        took = time.time() - t0
        assert took < 2, f"attempt {attempt}: failing took {took:.2f}s (acquire_timeout is 5s)"
        assert any(w in str(e) for w in words), f"attempt {attempt}: the error names none of {words}: {e!r}"
        seen.append(f"{took:.2f}s {e}")
    print(f"ok fails fast: {seen}")


def upstream_back(_args):
    deadline = time.time() + 30
    while True:
        try:
            assert one(pm(), "SELECT 50")[0][0] == 50
            break
        except Exception:  # noqa: BLE001 - until the proxy notices the upstream is back
            if time.time() > deadline:
                raise
            time.sleep(0.1)
    for _ in range(5):
        assert one(pm(), "SELECT 51")[0][0] == 51
    print("ok served again after restart")


def max_clients(args):
    pool = args[0]
    a, b = pm(), pm()
    assert one(a, "SELECT 1")[0][0] == 1 and one(b, "SELECT 1")[0][0] == 1
    expect_error(pm, errno=1040, contains=("max_clients", pool))
    b.close()
    deadline = time.time() + 10
    while True:  # the proxy counts b as gone once it has seen the close
        try:
            c = pm()
            break
        except Exception as e:  # noqa: BLE001
            if errno_of(e) != 1040 or time.time() > deadline:
                raise
            time.sleep(0.05)
    assert one(c, "SELECT 2")[0][0] == 2
    print("ok third client refused with 1040 naming max_clients; served after one left")


def good_client(_args):
    conn = pm()
    for i in range(20):
        assert one(conn, "SELECT %s", (i,))[0][0] == i
    print("ok good client unaffected")


SCENARIOS = {
    f.__name__: f
    for f in (
        multi_results, big_blob, load_local, prepared, caching_sha2, auth_errors, drivers, hold_txn,
        after_kill, exhausted, upstream_down, upstream_back, max_clients, good_client,
    )
}

if __name__ == "__main__":
    name, HOST, PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # A hang shows where every thread is, before the test's own timeout kills the process.
    faulthandler.dump_traceback_later(float(os.environ.get("EDGE_HANG_SECS", "120")), exit=True)
    SCENARIOS[name](sys.argv[4:])
