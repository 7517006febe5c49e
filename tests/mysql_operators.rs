//! The MySQL engine as operators see it, against a real mariadbd: pin reasons and leaked
//! transactions in the admin socket, the idle-in-transaction timeout, and `KILL` mapped from
//! the proxy's connection ids to upstream threads.

#[path = "support/harness.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use support::mysql_client::MysqlClient;
use support::proxy::TestProxy;
use support::{MYSQL_DATABASE, MYSQL_PASSWORD, MYSQL_USER, MariaDb, TempDir, wait_for};

struct Setup {
    _dir: TempDir,
    socket: PathBuf,
    proxy: TestProxy,
}

fn setup(pool_extra: &str) -> Setup {
    let db = MariaDb::shared();
    let dir = TempDir::new("mysql-admin");
    let socket = dir.path().join("admin.sock");
    let toml = format!(
        "[admin]\nsocket = \"{}\"\n[log]\nlevel = \"warn\"\n[[pool]]\nname = \"db\"\nprotocol = \"mysql\"\nlisten = \"127.0.0.1:0\"\nupstream = \"{}\"\n{pool_extra}\n  [[pool.users]]\n  user = \"{MYSQL_USER}\"\n  password = \"{MYSQL_PASSWORD}\"\n  [[pool.users]]\n  user = \"reporter\"\n  password = \"reporter-secret\"\n  upstream_user = \"{MYSQL_USER}\"\n  upstream_password = \"{MYSQL_PASSWORD}\"\n",
        socket.display(),
        db.addr()
    );
    let proxy = TestProxy::start(&toml);
    Setup {
        _dir: dir,
        socket,
        proxy,
    }
}

impl Setup {
    fn client(&self) -> MysqlClient {
        self.client_as(MYSQL_USER, MYSQL_PASSWORD)
    }

    fn client_as(&self, user: &str, password: &str) -> MysqlClient {
        MysqlClient::connect(self.proxy.addr("db"), user, password, Some(MYSQL_DATABASE))
            .unwrap_or_else(|e| panic!("connect as {user}: {e:?}"))
    }
}

fn admin(socket: &Path, command: &str) -> Json {
    let words: Vec<String> = command.split_whitespace().map(String::from).collect();
    let (out, failed) = tidepool::admin::client::call(socket, &words, true)
        .unwrap_or_else(|e| panic!("{command}: {e}"));
    assert!(!failed, "{command} failed: {out}");
    let v: Json = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{command}: {e}: {out}"));
    v.as_object()
        .and_then(|o| o.values().next().cloned())
        .unwrap_or_else(|| panic!("{command}: {out}"))
}

fn row(rows: &Json, id: u32) -> Option<Json> {
    rows.as_array()?
        .iter()
        .find(|r| r["id"].as_u64() == Some(u64::from(id)))
        .cloned()
}

#[test]
fn a_user_variable_pins_and_show_clients_says_so() {
    let s = setup("");
    let mut c = s.client();
    c.query("SET @cart = 42").unwrap();
    // The session reports right after its answer is written: a moment later than the client
    // reads it.
    wait_for("the pin to be reported", Duration::from_secs(5), || {
        row(&admin(&s.socket, "show clients"), c.connection_id)
            .is_some_and(|r| r["pin_reason"] == "user variable" && r["state"] == "pinned")
    });
    let mut plain = s.client();
    plain.query("SELECT @@sql_mode").unwrap();
    let shown = row(&admin(&s.socket, "show clients"), plain.connection_id).unwrap();
    assert!(
        shown["pin_reason"].is_null(),
        "a variable read pins nothing: {shown}"
    );
    assert_eq!(c.value("SELECT @cart").unwrap().as_deref(), Some("42"));
}

#[test]
fn an_idle_transaction_is_reported_as_leaked_then_rolled_back_and_closed() {
    let s = setup("leak_threshold = \"1s\"\nidle_in_transaction_timeout = \"3s\"");
    let mut c = s.client();
    c.query("CREATE TABLE IF NOT EXISTS leak_rows (id INT PRIMARY KEY)")
        .unwrap();
    c.query("DELETE FROM leak_rows").unwrap();
    c.query("BEGIN").unwrap();
    c.query("INSERT INTO leak_rows VALUES (7)").unwrap();
    let idle_since = Instant::now();
    let mut leak = None;
    wait_for(
        "the transaction in show leaks",
        Duration::from_secs(5),
        || {
            leak = row(&admin(&s.socket, "show leaks"), c.connection_id);
            leak.is_some()
        },
    );
    assert!(
        idle_since.elapsed() < Duration::from_secs(2),
        "listed within leak_threshold + 1 s"
    );
    let leak = leak.unwrap();
    assert_eq!(
        leak["pid"].as_u64(),
        Some(u64::from(std::process::id())),
        "{leak}"
    );
    assert_eq!(leak["pin_reason"], "transaction");
    assert_eq!(leak["last_statement"], "INSERT INTO leak_rows VALUES (?)");
    let (code, message) = c.next_error().expect("the client is told why it is closed");
    assert_eq!(code, 1927);
    assert!(message.contains("idle_in_transaction_timeout"), "{message}");
    let mut other = s.client();
    assert_eq!(
        other
            .value("SELECT COUNT(*) FROM leak_rows")
            .unwrap()
            .as_deref(),
        Some("0"),
        "rolled back"
    );
}

#[test]
fn kill_query_cancels_the_statement_of_the_connection_the_client_knows() {
    let s = setup("max_upstream = 3");
    let mut victim = s.client();
    let id = victim.connection_id;
    let sleeper = std::thread::spawn(move || {
        let started = Instant::now();
        let result = victim.value("SELECT SLEEP(30)");
        (result, started.elapsed(), victim)
    });
    let mut killer = s.client();
    wait_for("the victim to be running", Duration::from_secs(5), || {
        row(&admin(&s.socket, "show clients"), id).is_some_and(|r| r["state"] == "active")
    });
    killer.query(&format!("KILL QUERY {id}")).unwrap();
    let (result, took, mut victim) = sleeper.join().unwrap();
    // MariaDB answers an interrupted SLEEP() with 1 rather than an error.
    assert!(
        took < Duration::from_secs(10),
        "the statement was cancelled ({took:?}): {result:?}"
    );
    assert_eq!(
        victim.value("SELECT 7").unwrap().as_deref(),
        Some("7"),
        "the victim's session carries on"
    );
}

#[test]
fn kill_connection_closes_the_client_and_rolls_back_its_transaction() {
    let s = setup("");
    let mut victim = s.client();
    victim
        .query("CREATE TABLE IF NOT EXISTS kill_rows (id INT PRIMARY KEY)")
        .unwrap();
    victim.query("DELETE FROM kill_rows").unwrap();
    victim.query("BEGIN").unwrap();
    victim.query("INSERT INTO kill_rows VALUES (1)").unwrap();
    let mut stranger = s.client_as("reporter", "reporter-secret");
    let denied = stranger
        .query(&format!("KILL {}", victim.connection_id))
        .unwrap_err();
    assert_eq!(denied.0, 1095, "only the owner may kill: {denied:?}");
    let mut killer = s.client();
    killer
        .query(&format!("KILL CONNECTION {}", victim.connection_id))
        .unwrap();
    let (code, message) = victim.next_error().expect("the victim is told");
    assert_eq!(code, 1927, "{message}");
    assert_eq!(
        killer
            .value("SELECT COUNT(*) FROM kill_rows")
            .unwrap()
            .as_deref(),
        Some("0")
    );
    assert_eq!(
        killer.query("KILL 999999").unwrap_err().0,
        1094,
        "unknown ids are refused"
    );
}

#[test]
fn after_an_upstream_restart_the_first_client_is_not_handed_a_dead_connection() {
    let db = MariaDb::start();
    let proxy = TestProxy::start(&format!(
        "[log]\nlevel = \"warn\"\n[[pool]]\nname = \"db\"\nprotocol = \"mysql\"\nlisten = \"127.0.0.1:0\"\nupstream = \"{}\"\nmax_upstream = 2\n  [[pool.users]]\n  user = \"{MYSQL_USER}\"\n  password = \"{MYSQL_PASSWORD}\"\n",
        db.addr()
    ));
    let connect = || {
        MysqlClient::connect(
            proxy.addr("db"),
            MYSQL_USER,
            MYSQL_PASSWORD,
            Some(MYSQL_DATABASE),
        )
    };
    let mut before = connect().unwrap();
    assert_eq!(
        before.value("SELECT 1").unwrap().as_deref(),
        Some("1"),
        "a connection is pooled"
    );
    drop(before);
    db.kill();
    db.restart();
    // The health gate may still be backing off for a moment after the restart; what matters is
    // that once a client gets in, its first statement runs on a live connection.
    let mut after = None;
    wait_for("a client to get in", Duration::from_secs(10), || {
        after = connect().ok();
        after.is_some()
    });
    let mut after = after.unwrap();
    assert_eq!(after.value("SELECT 2").unwrap().as_deref(), Some("2"));
}

#[test]
fn an_execute_that_relies_on_earlier_parameter_types_works_on_another_connection() {
    let s = setup("max_upstream = 2");
    let mut c = s.client();
    let stmt = c.prepare("SELECT ?").unwrap();
    assert_eq!(
        c.execute_i64(stmt, 41, true).unwrap(),
        41,
        "first execute binds the types"
    );
    // Another client takes the connection that has the statement (the most recently used one)
    // and keeps it in a transaction: the next execute must run on a second connection, which
    // never saw the statement nor its types.
    let mut holder = s.client();
    holder.query("BEGIN").unwrap();
    holder
        .query("SELECT COUNT(*) FROM information_schema.TABLES")
        .unwrap();
    assert_eq!(
        c.execute_i64(stmt, 42, false).unwrap(),
        42,
        "re-prepared and types re-bound"
    );
    assert_eq!(c.execute_i64(stmt, 43, false).unwrap(), 43);
    let shown = row(&admin(&s.socket, "show clients"), c.connection_id).unwrap();
    assert!(
        shown["pin_reason"].is_null(),
        "prepared statements pin nothing: {shown}"
    );
    holder.query("ROLLBACK").unwrap();
}

#[test]
fn drain_lets_an_open_transaction_commit_and_tells_idle_clients_why() {
    let mut s = setup("");
    let mut idle = s.client();
    idle.query("SELECT 1").unwrap();
    let mut tx = s.client();
    tx.query("CREATE TABLE IF NOT EXISTS drain_rows (id INT PRIMARY KEY)")
        .unwrap();
    tx.query("DELETE FROM drain_rows").unwrap();
    tx.query("BEGIN").unwrap();
    tx.query("INSERT INTO drain_rows VALUES (1)").unwrap();
    s.proxy.stop(tidepool::server::StopKind::Drain);
    let (code, message) = idle.next_error().expect("an idle client is told");
    assert_eq!(code, 1053, "{message}");
    tx.query("INSERT INTO drain_rows VALUES (2)").unwrap();
    tx.query("COMMIT").unwrap();
    assert_eq!(
        tx.next_error().map(|e| e.0),
        Ok(1053),
        "then that client is closed too"
    );
    assert!(
        s.proxy.wait_stopped(Duration::from_secs(10)),
        "the proxy stops"
    );
    let db = MariaDb::shared();
    let count = db.exec("SELECT COUNT(*) FROM tidepool_test.drain_rows");
    assert!(
        count.contains('2'),
        "the transaction committed during the drain: {count}"
    );
}

#[test]
fn kill_reaches_a_client_that_is_waiting_for_an_upstream() {
    let s = setup("max_upstream = 1\nacquire_timeout = \"30s\"");
    let mut holder = s.client();
    holder.query("BEGIN").unwrap();
    holder
        .query("SELECT COUNT(*) FROM information_schema.TABLES")
        .unwrap();
    // No database in its DSN: validating one at connect would itself wait for an upstream.
    let mut waiter =
        MysqlClient::connect(s.proxy.addr("db"), MYSQL_USER, MYSQL_PASSWORD, None).unwrap();
    let id = waiter.connection_id;
    let blocked = std::thread::spawn(move || {
        let started = Instant::now();
        let result = waiter.query("SELECT 1");
        (result, started.elapsed())
    });
    wait_for("the waiter to wait", Duration::from_secs(5), || {
        row(&admin(&s.socket, "show clients"), id).is_some_and(|r| r["state"] == "waiting")
    });
    admin(&s.socket, &format!("kill {id}"));
    let (result, took) = blocked.join().unwrap();
    let (code, message) = result.expect_err("the killed client's query fails");
    assert_eq!(code, 1927, "{message}");
    assert!(
        took < Duration::from_secs(10),
        "at once, not after acquire_timeout ({took:?})"
    );
    holder.query("ROLLBACK").unwrap();
}
