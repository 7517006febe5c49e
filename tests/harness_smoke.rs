//! Proves the test harness itself: real servers start, answer, die, restart and never leak.

#[path = "support/harness.rs"]
mod support;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{
    MYSQL_DATABASE, MYSQL_PASSWORD, MYSQL_USER, MariaDb, MariaDbOptions, RedisServer, Reply,
    assert_success, mysql_cli, redis_command, run_python_code, wait_for,
};

const WAIT: Duration = Duration::from_secs(10);

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn redis_answers_counts_clients_and_survives_kill_and_restart() {
    let redis = RedisServer::start();
    assert_eq!(redis.command(&["PING"]), Reply::Simple("PONG".into()));
    assert_eq!(
        redis.command(&["SET", "k", "v"]),
        Reply::Simple("OK".into())
    );
    assert_eq!(redis.command(&["GET", "k"]).text().as_deref(), Some("v"));

    assert_eq!(
        redis.client_list_count(""),
        0,
        "the helper must not count itself"
    );
    let client = TcpStream::connect(redis.addr()).unwrap();
    wait_for("one client in CLIENT LIST", WAIT, || {
        redis.client_list_count("") == 1
    });
    assert_eq!(redis.client_list_count("cmd=NULL"), 1);
    assert_eq!(redis.client_list_count("db=5"), 0);
    drop(client);
    wait_for("the client to leave CLIENT LIST", WAIT, || {
        redis.client_list_count("") == 0
    });

    let (port, pid) = (redis.port(), redis.pid().unwrap());
    redis.kill();
    assert!(
        !redis.is_running() && !process_exists(pid),
        "kill() must reap the server"
    );
    assert!(
        TcpStream::connect(redis.addr()).is_err(),
        "nothing may listen after kill()"
    );
    assert!(redis.dir().exists(), "kill() keeps the dir for restart()");

    redis.restart();
    assert_eq!(redis.port(), port);
    assert_ne!(redis.pid().unwrap(), pid);
    assert_eq!(redis.command(&["PING"]), Reply::Simple("PONG".into()));
    assert_eq!(
        redis.command(&["GET", "k"]),
        Reply::Bulk(None),
        "no persistence"
    );
}

#[test]
fn redis_extra_args_and_password() {
    let redis = RedisServer::start_with(&["--requirepass", "s3cret", "--maxclients", "7"]);
    assert_eq!(redis.password(), Some("s3cret"));
    let config = redis.command(&["CONFIG", "GET", "maxclients"]);
    assert_eq!(
        config,
        Reply::Array(Some(vec![
            Reply::Bulk(Some(b"maxclients".to_vec())),
            Reply::Bulk(Some(b"7".to_vec()))
        ]))
    );
    match redis_command(redis.addr(), None, &["GET", "k"]).unwrap() {
        Reply::Error(e) => assert!(e.starts_with("NOAUTH"), "{e}"),
        other => panic!("unauthenticated GET answered {other:?}"),
    }
    assert!(redis_command(redis.addr(), Some("wrong"), &["PING"]).is_err());
}

#[test]
fn frozen_redis_keeps_connections_but_answers_only_after_thaw() {
    use std::io::Read;
    let redis = RedisServer::start();
    let mut conn = TcpStream::connect(redis.addr()).unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    redis.freeze();
    conn.write_all(b"PING\r\n").unwrap();
    let mut buf = [0u8; 7];
    let err = conn.read(&mut buf).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    redis.thaw();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    conn.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"+PONG\r\n");
}

#[test]
fn redis_drop_kills_the_server_and_removes_its_dir() {
    let redis = RedisServer::start();
    let (pid, dir) = (redis.pid().unwrap(), redis.dir().to_path_buf());
    drop(redis);
    assert!(
        !process_exists(pid),
        "redis-server {pid} outlived its RedisServer"
    );
    assert!(!dir.exists(), "{} outlived its RedisServer", dir.display());
}

#[test]
fn shared_mariadb_has_the_accounts_and_counts_connections() {
    let db = MariaDb::shared();
    assert!(
        std::ptr::eq(db, MariaDb::shared()),
        "one shared server per binary"
    );
    assert_eq!(db.exec("SELECT 1"), "1");
    assert!(db.socket_path().exists());

    let who = mysql_cli(
        db.addr(),
        MYSQL_USER,
        MYSQL_PASSWORD,
        Some(MYSQL_DATABASE),
        "SELECT CURRENT_USER(), DATABASE()",
    );
    assert_eq!(who.unwrap(), format!("{MYSQL_USER}@%\t{MYSQL_DATABASE}"));
    let root = mysql_cli(
        db.addr(),
        "root",
        support::MYSQL_ROOT_PASSWORD,
        None,
        "SELECT CURRENT_USER()",
    );
    assert!(root.unwrap().starts_with("root@"));
    let denied = mysql_cli(db.addr(), MYSQL_USER, "wrong", None, "SELECT 1").unwrap_err();
    assert!(denied.contains("Access denied"), "{denied}");
    let plugin = db.exec("SELECT DISTINCT plugin FROM mysql.user WHERE user = 'app'");
    assert_eq!(plugin, "mysql_native_password");
    let grants = db.exec("SHOW GRANTS FOR 'app'@'%'");
    assert!(
        !grants.contains("SUPER") && !grants.contains("CONNECTION ADMIN"),
        "{grants}"
    );

    // A connection held open as `app` shows in the process list until it is killed.
    let addr = db.addr();
    let sleeper = std::thread::spawn(move || {
        mysql_cli(
            addr,
            MYSQL_USER,
            MYSQL_PASSWORD,
            None,
            "SELECT SLEEP(60) /* harness-smoke */",
        )
    });
    let find = "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(60) /* harness-smoke%'";
    wait_for("the sleeper in the process list", WAIT, || {
        !db.exec(find).is_empty()
    });
    assert!(db.processlist_count(MYSQL_USER) >= 1);
    let id = db.exec(find);
    db.exec(&format!("KILL {id}"));
    assert!(
        sleeper.join().unwrap().is_err(),
        "a killed connection must fail"
    );
    wait_for("the sleeper to leave", WAIT, || db.exec(find).is_empty());
}

#[test]
fn own_mariadb_honours_options_and_survives_kill_and_restart() {
    let db = MariaDb::start_with(
        MariaDbOptions::default()
            .max_connections(12)
            .arg("--wait-timeout=77"),
    );
    assert_eq!(
        db.exec("SELECT @@max_connections, @@wait_timeout"),
        "12\t77"
    );
    db.exec("CREATE TABLE tidepool_test.t (v INT) ENGINE=InnoDB; INSERT INTO tidepool_test.t VALUES (42)");

    let (port, pid, dir) = (db.port(), db.pid().unwrap(), db.dir().to_path_buf());
    db.kill();
    assert!(!db.is_running() && !process_exists(pid));
    assert!(mysql_cli(db.addr(), MYSQL_USER, MYSQL_PASSWORD, None, "SELECT 1").is_err());

    db.restart();
    assert_eq!(db.port(), port);
    assert_eq!(
        db.exec("SELECT v FROM tidepool_test.t"),
        "42",
        "committed rows survive a crash"
    );
    let pid = db.pid().unwrap();
    drop(db);
    assert!(
        !process_exists(pid) && !dir.exists(),
        "MariaDb drop must kill and clean up"
    );
}

/// Runs `child_starts_servers_then_dies` in a child test process that SIGKILLs itself holding a
/// RedisServer and the shared MariaDb: no destructor runs, yet both servers and dirs must vanish.
#[test]
fn servers_die_with_the_test_binary() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_starts_servers_then_dies",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TIDEPOOL_HARNESS_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let leftovers: Vec<(u32, PathBuf)> = stdout
        .lines()
        .filter_map(|line| line.split_once("SERVER ").map(|(_, rest)| rest))
        .map(|rest| {
            let (pid, dir) = rest.split_once(' ').unwrap();
            (pid.parse().unwrap(), PathBuf::from(dir))
        })
        .collect();
    assert_eq!(
        leftovers.len(),
        2,
        "child output:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (pid, dir) in leftovers {
        wait_for(
            &format!("server {pid} to die with its test binary"),
            WAIT,
            || !process_exists(pid),
        );
        wait_for(&format!("{} to be removed", dir.display()), WAIT, || {
            !dir.exists()
        });
    }
}

#[test]
#[ignore = "run by servers_die_with_the_test_binary"]
fn child_starts_servers_then_dies() {
    if std::env::var_os("TIDEPOOL_HARNESS_CHILD").is_none() {
        return;
    }
    let redis = RedisServer::start();
    let db = MariaDb::shared();
    let mut stdout = std::io::stdout();
    writeln!(
        stdout,
        "SERVER {} {}",
        redis.pid().unwrap(),
        redis.dir().display()
    )
    .unwrap();
    writeln!(
        stdout,
        "SERVER {} {}",
        db.pid().unwrap(),
        db.dir().display()
    )
    .unwrap();
    stdout.flush().unwrap();
    Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status()
        .unwrap();
    unreachable!("SIGKILLed");
}

const PYTHON_CLIENTS: &str = r#"
import sys
import redis, pymysql, MySQLdb, mysql.connector, sqlalchemy, cryptography
redis_port, mysql_port, user, password, database = sys.argv[1:]
r = redis.Redis(host="127.0.0.1", port=int(redis_port), protocol=3)
assert r.ping() is True
conn = pymysql.connect(host="127.0.0.1", port=int(mysql_port), user=user, password=password, database=database)
with conn.cursor() as cur:
    cur.execute("SELECT CURRENT_USER()")
    print("pymysql", cur.fetchone()[0])
conn.close()
engine = sqlalchemy.create_engine(f"mysql+mysqldb://{user}:{password}@127.0.0.1:{mysql_port}/{database}")
with engine.connect() as c:
    print("sqlalchemy+mysqlclient", c.execute(sqlalchemy.text("SELECT 40 + 2")).scalar())
c = mysql.connector.connect(host="127.0.0.1", port=int(mysql_port), user=user, password=password, database=database)
cur = c.cursor()
cur.execute("SELECT DATABASE()")
print("mysql-connector", cur.fetchone()[0])
c.close()
print("redis-py", redis.__version__)
"#;

#[test]
fn python_venv_has_every_client_and_reaches_the_servers() {
    let redis = RedisServer::start();
    let db = MariaDb::shared();
    let (redis_port, mysql_port) = (redis.port().to_string(), db.port().to_string());
    let args = [
        redis_port.as_str(),
        mysql_port.as_str(),
        MYSQL_USER,
        MYSQL_PASSWORD,
        MYSQL_DATABASE,
    ];
    let Some(out) = run_python_code(PYTHON_CLIENTS, &args) else {
        return;
    };
    assert_success(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("pymysql app@%"), "{stdout}");
    assert!(stdout.contains("sqlalchemy+mysqlclient 42"), "{stdout}");
    assert!(
        stdout.contains(&format!("mysql-connector {MYSQL_DATABASE}")),
        "{stdout}"
    );
    assert!(stdout.contains("redis-py 8."), "{stdout}");
}
