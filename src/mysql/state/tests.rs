use super::*;

fn pins(sql: &str) -> Vec<PinReason> {
    scan_statement(sql.as_bytes()).pins
}

#[test]
fn reads_of_variables_and_the_orm_connect_sequence_do_not_pin() {
    for sql in [
        "SELECT @@sql_mode",
        "SELECT @@lower_case_table_names",
        "SELECT @@transaction_isolation",
        "SELECT DATABASE()",
        "SET NAMES utf8mb4",
        "SET AUTOCOMMIT = 0",
        "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        "SET @@session.time_zone = '+01:00'",
        "SHOW VARIABLES LIKE 'sql_mode'",
        "SELECT * FROM t WHERE name = '@x = 1'",
    ] {
        assert_eq!(pins(sql), vec![], "{sql}");
    }
}

#[test]
fn state_nothing_can_replay_pins_with_its_reason() {
    assert_eq!(pins("SET @x = 1"), vec![PinReason::UserVariable]);
    assert_eq!(
        pins("SELECT @n := COUNT(*) FROM t"),
        vec![PinReason::UserVariable]
    );
    assert_eq!(
        pins("SELECT id INTO @id FROM t LIMIT 1"),
        vec![PinReason::UserVariable]
    );
    assert_eq!(
        pins("CREATE TEMPORARY TABLE tmp (id int)"),
        vec![PinReason::TemporaryTable]
    );
    assert_eq!(pins("SELECT GET_LOCK('job', 10)"), vec![PinReason::GetLock]);
    assert_eq!(pins("LOCK TABLES t WRITE"), vec![PinReason::LockTables]);
    assert_eq!(
        pins("PREPARE s FROM 'SELECT 1'"),
        vec![PinReason::SqlPrepare]
    );
    assert_eq!(
        pins("SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 1"),
        vec![PinReason::FoundRows]
    );
    assert_eq!(
        pins("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
        vec![PinReason::TransactionCharacteristics]
    );
    assert_eq!(
        pins("/* get_lock('x', 1) */ SELECT 1"),
        vec![],
        "comments are not code"
    );
}

#[test]
fn releases_are_recognised() {
    assert_eq!(
        scan_statement(b"UNLOCK TABLES").releases,
        vec![PinReason::LockTables]
    );
    assert_eq!(
        scan_statement(b"SELECT RELEASE_ALL_LOCKS()").releases,
        vec![PinReason::GetLock]
    );
    assert_eq!(
        scan_statement(b"SELECT FOUND_ROWS()").releases,
        vec![PinReason::FoundRows]
    );
}

#[test]
fn plain_commit_and_rollback_end_a_transaction_but_savepoints_do_not() {
    assert!(scan_statement(b"ROLLBACK").ends_transaction);
    assert!(scan_statement(b"commit").ends_transaction);
    assert!(!scan_statement(b"ROLLBACK TO SAVEPOINT a").ends_transaction);
    assert!(!scan_statement(b"COMMIT AND CHAIN").ends_transaction);
    assert!(scan_statement(b"SELECT LAST_INSERT_ID()").reads_last_insert_id);
}

fn var(name: &str, value: &str) -> SessionStateChange {
    SessionStateChange::SystemVariable {
        name: name.into(),
        value: value.into(),
    }
}

#[test]
fn tracked_variables_and_schema_become_replayable_state() {
    let (mut client, mut up) = (Replayable::default(), Replayable::default());
    let pin = apply_changes(
        &[
            var("time_zone", "+01:00"),
            SessionStateChange::Schema("app".into()),
            SessionStateChange::StateChanged(true),
        ],
        &mut client,
        &mut up,
    );
    assert_eq!(pin, None, "a tracked change explains the state-change flag");
    assert_eq!(
        client.vars.get("time_zone").map(String::as_str),
        Some("+01:00")
    );
    assert_eq!(up.schema.as_deref(), Some("app"));
}

#[test]
fn an_untracked_state_change_pins() {
    let (mut client, mut up) = (Replayable::default(), Replayable::default());
    let pin = apply_changes(
        &[SessionStateChange::StateChanged(true)],
        &mut client,
        &mut up,
    );
    assert_eq!(pin, Some(PinReason::UnexplainedStateChange));
    let pin = apply_changes(&[var("session_track_schema", "OFF")], &mut client, &mut up);
    assert_eq!(pin, Some(PinReason::SessionTracking));
}

#[test]
fn replay_sends_only_the_difference_and_restores_what_others_left() {
    let mut client = Replayable::default();
    client.vars.insert("sql_mode".into(), "ANSI".into());
    client.vars.insert("time_zone".into(), "+01:00".into());
    client.schema = Some("app".into());
    let mut up = Replayable::default();
    up.vars.insert("time_zone".into(), "+01:00".into());
    up.vars.insert("autocommit".into(), "OFF".into());
    let r = replay(&client, &up, None);
    assert_eq!(
        r.set.as_deref(),
        Some("SET SESSION sql_mode = 'ANSI', autocommit = DEFAULT")
    );
    assert_eq!(r.schema.as_deref(), Some("app"));
    assert!(replay(&client, &client, None).is_empty());
    assert_eq!(
        replay(&client, &client, Some(42)).set.as_deref(),
        Some("SET SESSION last_insert_id = 42")
    );
}

#[test]
fn values_are_quoted_so_that_no_sql_mode_misreads_them() {
    assert_eq!(sql_value("28800"), "28800");
    assert_eq!(sql_value("-1.5"), "-1.5");
    assert_eq!(sql_value("+01:00"), "'+01:00'");
    assert_eq!(sql_value(""), "''");
    assert_eq!(sql_value("a'b"), "X'612762'");
}

#[test]
fn the_lexer_free_path_agrees_with_the_lexer() {
    for sql in [
        "SELECT c FROM sbtest1 WHERE id=5003",
        "  select * from t;",
        "SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 1",
        "SELECT sql_calc_found_rows a FROM t",
        "SELECT a INTO @x FROM t",
        "SELECT GET_LOCK('a', 1)",
        "UPDATE t SET a = @x",
        "INSERT INTO t VALUES (1)",
        "SELECT`a`FROM t",
        "DELETE FROM t WHERE a = 'x'",
    ] {
        let fast = plain_statement(sql.as_bytes());
        if let Some(fast) = fast {
            let mut slow = sql.as_bytes().to_vec();
            // A leading comment forces the lexer.
            slow.splice(0..0, b"/**/ ".iter().copied());
            assert_eq!(fast, scan_statement(&slow), "{sql}");
        }
    }
    assert!(plain_statement(b"SELECT c FROM sbtest1 WHERE id=5003").is_some());
    assert!(plain_statement(b"SELECT a INTO @x FROM t").is_none());
    assert!(plain_statement(b"SELECT SQL_CALC_FOUND_ROWS * FROM t").is_none());
    assert!(plain_statement(b"COMMIT").is_none());
}
