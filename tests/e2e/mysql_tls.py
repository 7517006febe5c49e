"""TLS between the drivers and Tidepool (the proxy's own certificate).

Usage: mysql_tls.py HOST PORT CA_FILE
"""

import sys

import MySQLdb
import pymysql

host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
args = dict(host=host, port=port, user="app", password="app-secret", database="tidepool_test")

c = pymysql.connect(ssl={"ca": ca}, **args)
version = c._sock.version()
assert version and version.startswith("TLS"), f"PyMySQL is not on TLS: {version}"
cur = c.cursor()
cur.execute("SELECT 1 + 1")
assert cur.fetchone()[0] == 2
c.close()

m = MySQLdb.connect(ssl_mode="REQUIRED", ssl={"ca": ca}, **args)
cur = m.cursor()
cur.execute("SELECT 'over tls'")
assert cur.fetchone()[0] == "over tls"
m.close()

# PyMySQL 1.2 prefers TLS whenever the server offers it; turned off, it stays on plain TCP.
preferred = pymysql.connect(**args)
assert preferred._sock.version().startswith("TLS"), "PyMySQL's default mode upgrades"
preferred.close()
plain = pymysql.connect(ssl_disabled=True, **args)
assert not hasattr(plain._sock, "version"), "a client that does not ask stays on plain TCP"
plain.cursor().execute("SELECT 1")
plain.close()
print(f"ok {version}")
