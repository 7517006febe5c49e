use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    let raw: raw::RawConfig =
        toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
    validate::validate(raw, &|name| {
        (name == "SET_VAR").then(|| "from-env".to_string())
    })
}

fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Err(ConfigError::Invalid(e)) => e,
        other => panic!("expected validation errors, got {other:?}"),
    }
}

const REDIS: &str = r#"
[[pool]]
name = "cache"
protocol = "redis"
listen = "127.0.0.1:6380"
upstream = "127.0.0.1:6379"
"#;

#[test]
fn a_minimal_redis_pool_gets_the_documented_defaults() {
    let c = parse(REDIS).unwrap();
    let p = &c.pools[0];
    assert_eq!(p.max_upstream, 10);
    assert_eq!(p.acquire_timeout, Duration::from_secs(5));
    assert_eq!(p.client_idle_timeout, None);
    assert_eq!(
        p.idle_in_transaction_timeout,
        Some(Duration::from_secs(300))
    );
    assert_eq!(p.redis.as_ref().unwrap().max_pinned, 16);
    assert_eq!(c.metrics.prefix, "tidepool");
}

#[test]
fn unknown_keys_are_rejected_not_ignored() {
    let err = parse(&format!("{REDIS}max_upstreams = 3\n")).unwrap_err();
    assert!(err.to_string().contains("max_upstreams"), "{err}");
}

#[test]
fn errors_name_the_key_path_and_are_all_reported() {
    let e = errors(&format!(
        "{REDIS}max_upstream = 0\nacquire_timeout = \"soon\"\n"
    ));
    assert!(
        e.iter()
            .any(|m| m.starts_with("pool[0].max_upstream must be >= 1")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.starts_with("pool[0].acquire_timeout is not a duration")),
        "{e:?}"
    );
}

#[test]
fn keys_of_the_other_protocol_are_refused_by_name() {
    let e = errors(&format!(
        "{REDIS}[[pool.users]]\nuser = \"a\"\npassword = \"b\"\n"
    ));
    assert!(
        e.iter()
            .any(|m| m.starts_with("pool[0].users applies only to mysql")),
        "{e:?}"
    );
}

#[test]
fn secrets_come_from_the_environment_and_never_print() {
    let c = parse(&format!("{REDIS}password_env = \"SET_VAR\"\n")).unwrap();
    let pw = c.pools[0]
        .redis
        .as_ref()
        .unwrap()
        .password
        .as_ref()
        .unwrap();
    assert_eq!(pw.expose(), "from-env");
    let shown = c.to_redacted_toml();
    assert!(
        !shown.contains("from-env") && shown.contains("<redacted>"),
        "{shown}"
    );
    assert!(!format!("{c:?}").contains("from-env"));
}

#[test]
fn a_missing_environment_variable_is_an_error_naming_it() {
    let e = errors(&format!("{REDIS}password_env = \"UNSET_VAR\"\n"));
    assert!(
        e.iter()
            .any(|m| m.contains("pool[0].password_env") && m.contains("UNSET_VAR")),
        "{e:?}"
    );
}

#[test]
fn mysql_users_map_to_upstream_accounts() {
    let c = parse(
        r#"
[[pool]]
name = "db"
protocol = "mysql"
listen = "unix:/tmp/tp.sock"
upstream = "localhost:3306"
  [[pool.users]]
  user = "app"
  password = "s"
  upstream_user = "app_rw"
"#,
    )
    .unwrap();
    let u = &c.pools[0].users[0];
    assert_eq!(
        (u.user.as_str(), u.upstream_user.as_str()),
        ("app", "app_rw")
    );
    assert_eq!(u.upstream_password.expose(), "s");
    assert_eq!(c.pools[0].listen, ListenAddr::Unix("/tmp/tp.sock".into()));
}

#[test]
fn duplicate_pool_names_and_listeners_are_refused() {
    let e = errors(&format!("{REDIS}{REDIS}"));
    assert!(e.iter().any(|m| m.contains("pool[1].name")), "{e:?}");
    assert!(e.iter().any(|m| m.contains("pool[1].listen")), "{e:?}");
}

#[test]
fn only_harmless_refusals_can_be_allowed() {
    let ok = parse(&format!("{REDIS}allow_commands = [\"client  kill\"]\n")).unwrap();
    assert_eq!(
        ok.pools[0].redis.as_ref().unwrap().allow_commands,
        vec!["CLIENT KILL"]
    );
    let e = errors(&format!("{REDIS}allow_commands = [\"MONITOR\"]\n"));
    assert!(
        e.iter().any(|m| m.starts_with("pool[0].allow_commands[0]")),
        "{e:?}"
    );
}

#[test]
fn what_check_prints_loads_back_as_the_same_config() {
    let c = parse(&format!(
        "{REDIS}max_pinned = 3\nallow_commands = [\"DEBUG\"]\n"
    ))
    .unwrap();
    let again = parse(&c.to_redacted_toml()).unwrap();
    assert_eq!(again, c);
}

#[test]
fn the_admin_client_finds_the_socket_without_the_proxys_secrets() {
    let dir = std::env::temp_dir().join(format!("tidepool-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("p.toml");
    let text = format!("[admin]\nsocket = \"/run/tp.sock\"\n{REDIS}password_env = \"UNSET_VAR\"\n");
    std::fs::write(&path, text).unwrap();
    assert!(
        Config::load(&path).is_err(),
        "the proxy itself needs the secret"
    );
    let socket = Config::admin_socket(&path).unwrap();
    assert_eq!(socket, Some(PathBuf::from("/run/tp.sock")));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn min_idle_is_refused_where_nothing_would_honour_it() {
    let e = errors(&format!("{REDIS}min_idle = 2\n"));
    assert!(
        e.iter()
            .any(|m| m.starts_with("pool[0].min_idle applies only to mysql")),
        "{e:?}"
    );
}
