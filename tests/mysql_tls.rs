//! TLS between clients and the proxy (`tls_cert` / `tls_key`): the mid-handshake upgrade
//! with the real drivers, and a plain client on the same pool.

#[path = "support/harness.rs"]
mod support;

use support::proxy::TestProxy;
use support::{
    MYSQL_PASSWORD, MYSQL_USER, MariaDb, TempDir, assert_success, repo_path, run_python,
};

#[test]
fn drivers_connect_over_tls_and_plain_clients_still_can() {
    let db = MariaDb::shared();
    let dir = TempDir::new("tls");
    let key =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, private) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, key.cert.pem()).unwrap();
    std::fs::write(&private, key.signing_key.serialize_pem()).unwrap();
    let toml = format!(
        "[log]\nlevel = \"warn\"\n[[pool]]\nname = \"db\"\nprotocol = \"mysql\"\nlisten = \"127.0.0.1:0\"\nupstream = \"{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n  [[pool.users]]\n  user = \"{MYSQL_USER}\"\n  password = \"{MYSQL_PASSWORD}\"\n",
        db.addr(),
        cert.display(),
        private.display()
    );
    let proxy = TestProxy::start(&toml);
    let port = proxy.addr("db").port().to_string();
    let ca = cert.display().to_string();
    if let Some(out) = run_python(
        &repo_path("tests/e2e/mysql_tls.py"),
        &["127.0.0.1", &port, &ca],
    ) {
        assert_success(&out);
    }
}

#[test]
fn an_unusable_certificate_is_refused_at_check_time_naming_the_key() {
    let dir = TempDir::new("tls-bad");
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "not a certificate").unwrap();
    let toml = format!(
        "[[pool]]\nname = \"db\"\nprotocol = \"mysql\"\nlisten = \"127.0.0.1:0\"\nupstream = \"127.0.0.1:3306\"\ntls_cert = \"{0}\"\ntls_key = \"{0}\"\n  [[pool.users]]\n  user = \"a\"\n  password = \"b\"\n",
        cert.display()
    );
    let err = tidepool::config::Config::from_toml(&toml)
        .unwrap_err()
        .to_string();
    assert!(err.contains("pool[0].tls_cert"), "{err}");
}
