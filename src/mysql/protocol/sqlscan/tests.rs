use super::*;

fn words(sql: &str) -> Vec<String> {
    tokens(sql.as_bytes())
        .filter_map(|t| match t {
            Token::Word(w) => Some(String::from_utf8_lossy(w).into_owned()),
            _ => None,
        })
        .collect()
}

#[test]
fn tokens_of_a_statement() {
    let sql = b"SELECT `a``b`, 'it''s', \"q\\\"\", 1.5e3, @x, @@session.sql_mode, x'ff' FROM t1;";
    let toks: Vec<Token<'_>> = tokens(sql).collect();
    assert_eq!(
        toks,
        vec![
            Token::Word(b"SELECT"),
            Token::QuotedIdent(b"`a``b`"),
            Token::Punct(b','),
            Token::String(b"'it''s'"),
            Token::Punct(b','),
            Token::String(b"\"q\\\"\""),
            Token::Punct(b','),
            Token::Number(b"1.5e3"),
            Token::Punct(b','),
            Token::Variable(b"@x"),
            Token::Punct(b','),
            Token::Variable(b"@@session.sql_mode"),
            Token::Punct(b','),
            Token::String(b"x'ff'"),
            Token::Word(b"FROM"),
            Token::Word(b"t1"),
            Token::Punct(b';'),
        ]
    );
}

#[test]
fn comments_are_skipped_but_executable_comments_are_code() {
    assert_eq!(
        words("SELECT 1 -- GET_LOCK\n, 2 # RELEASE_LOCK\n/* SLEEP */ FROM t"),
        ["SELECT", "FROM", "t"]
    );
    assert_eq!(
        words("/*!40101 SET NAMES utf8 */"),
        ["SET", "NAMES", "utf8"]
    );
    assert_eq!(
        words("SELECT /*M!100100 GET_LOCK */ 1"),
        ["SELECT", "GET_LOCK"]
    );
    assert_eq!(
        words("SELECT /*! STRAIGHT_JOIN */ a"),
        ["SELECT", "STRAIGHT_JOIN", "a"]
    );
    // `--` starts a comment only before whitespace (or at the end): `1--1` is arithmetic.
    assert_eq!(words("SELECT 1--1 AS x"), ["SELECT", "AS", "x"]);
    assert_eq!(words("SELECT a --"), ["SELECT", "a"]);
}

#[test]
fn backslash_escapes_can_be_turned_off() {
    let sql = br"SELECT 'a\' , GET_LOCK('x', 1)";
    // With escapes, \' is inside the string, and GET_LOCK is inside it too.
    assert!(!calls_function(sql, "GET_LOCK"));
    let no_escapes: Vec<_> = Lexer::new(sql)
        .backslash_escapes(false)
        .map(|s| s.token)
        .collect();
    assert!(no_escapes.contains(&Token::Word(b"GET_LOCK")));
}

#[test]
fn unterminated_things_do_not_panic() {
    for sql in [
        "'abc", "\"abc\\", "`abc", "/* abc", "/*! abc", "@'x", "x'", "0x", "1e", "1e+", ".", "@@",
        "\\",
    ] {
        let _ = tokens(sql.as_bytes()).count();
        let _ = mask_literals(sql.as_bytes(), 10);
        let _ = is_pure_variable_read(sql.as_bytes());
    }
    assert_eq!(tokens(b"").count(), 0);
    assert_eq!(tokens(b"\xff\xfe\x80").count(), 1);
}

#[test]
fn first_keyword_skips_comments_and_parentheses() {
    let k = |s: &str| first_keyword(s.as_bytes());
    assert_eq!(k("select 1").as_deref(), Some("SELECT"));
    assert_eq!(k("  /* hint */ -- x\n  Begin").as_deref(), Some("BEGIN"));
    assert_eq!(
        k("((SELECT 1) UNION (SELECT 2))").as_deref(),
        Some("SELECT")
    );
    assert_eq!(k("/*!40101 SET NAMES utf8mb4 */").as_deref(), Some("SET"));
    assert_eq!(k("'str'"), None);
    assert_eq!(k(""), None);
    assert_eq!(k("-- only a comment"), None);
}

#[test]
fn calls_function_matches_calls_only() {
    let c = |s: &str, f: &str| calls_function(s.as_bytes(), f);
    assert!(c("SELECT GET_LOCK('a', 10)", "GET_LOCK"));
    assert!(c("select get_lock ('a', 10)", "GET_LOCK"));
    assert!(c("SELECT get_lock /* why */ ('a', 10)", "get_lock"));
    assert!(c("SELECT RELEASE_ALL_LOCKS()", "RELEASE_ALL_LOCKS"));
    assert!(c(
        "SELECT 1 FROM t WHERE IS_USED_LOCK('x') IS NULL",
        "IS_USED_LOCK"
    ));
    assert!(c("SELECT LAST_INSERT_ID()", "LAST_INSERT_ID"));
    assert!(c("/*!50000 SELECT FOUND_ROWS() */", "FOUND_ROWS"));
    assert!(!c("SELECT 'GET_LOCK(1)'", "GET_LOCK"));
    assert!(!c("SELECT `GET_LOCK`(1)", "GET_LOCK"));
    assert!(!c("SELECT 1 -- GET_LOCK(1)", "GET_LOCK"));
    assert!(!c("SELECT get_lock_count FROM t", "GET_LOCK"));
    assert!(!c("SELECT my_get_lock(1)", "GET_LOCK"));
    assert!(!c("SELECT row_count FROM t", "ROW_COUNT"));
    assert!(!c("SELECT GET_LOCK", "GET_LOCK"));
}

#[test]
fn mentions_keyword_outside_strings() {
    let m = |s: &str, k: &str| mentions_keyword(s.as_bytes(), k);
    assert!(m(
        "SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 5",
        "SQL_CALC_FOUND_ROWS"
    ));
    assert!(m("create temporary table x (a int)", "TEMPORARY"));
    assert!(!m("SELECT 'TEMPORARY'", "TEMPORARY"));
    assert!(!m("SELECT temporary_x FROM t", "TEMPORARY"));
    assert!(!m("SELECT `temporary` FROM t", "TEMPORARY"));
}

#[test]
fn mask_literals_hides_values_and_collapses_whitespace() {
    let m = |s: &str, n| mask_literals(s.as_bytes(), n);
    assert_eq!(
        m(
            "SELECT *\n  FROM users WHERE email = 'a@b.c' AND id IN (1, 2,3) -- secret\n",
            200
        ),
        "SELECT * FROM users WHERE email = ? AND id IN (?, ?,?)"
    );
    assert_eq!(
        m(
            "UPDATE t SET pw=\"x\\\"y\", n=-1.5e3 WHERE k = x'abcd'",
            200
        ),
        "UPDATE t SET pw=?, n=-? WHERE k = ?"
    );
    assert_eq!(
        m("SELECT @a, @@sql_mode, ? FROM `t 1`", 200),
        "SELECT @a, @@sql_mode, ? FROM `t 1`"
    );
    assert_eq!(m("/*!40101 SET NAMES utf8 */", 200), "SET NAMES utf8");
    assert_eq!(
        m("SELECT 'a very long literal' FROM some_table", 15),
        "SELECT ? FROM …"
    );
    assert_eq!(m("SELECT 1", 0), "");
    assert_eq!(m("SELECT 'é' FROM tåble", 200), "SELECT ? FROM tåble");
}

#[test]
fn pure_variable_reads() {
    for sql in [
        "SELECT @@x",
        "select @@sql_mode",
        "SELECT @@session.transaction_isolation",
        "SELECT @@lower_case_table_names",
        "SELECT @@tx_isolation;",
        "SELECT @@session.auto_increment_increment AS auto_increment_increment, @@character_set_client AS character_set_client, @@y z",
        "SELECT @@version_comment LIMIT 1",
        "SELECT @@x AS `x`, @@y AS 'y'",
        "SELECT @@max_allowed_packet FROM DUAL",
        "SELECT DATABASE()",
        "SELECT database(), version(), @@hostname",
        "SELECT SCHEMA()",
        "/* ping */ SELECT VERSION()",
        "SHOW VARIABLES",
        "SHOW SESSION VARIABLES LIKE 'sql_mode'",
        "show global variables like 'lower_case%'",
        "SHOW VARIABLES WHERE Variable_name IN ('a', 'b')",
        "SHOW VARIABLES WHERE Variable_name = 'x' OR Value LIKE '%y%'",
    ] {
        assert!(is_pure_variable_read(sql.as_bytes()), "{sql}");
    }
}

#[test]
fn not_pure_variable_reads() {
    for sql in [
        "SELECT @x",
        "SELECT @@x, @y",
        "SELECT @@x := 1",
        "SELECT CONNECTION_ID()",
        "SELECT @@x, CONNECTION_ID()",
        "SELECT LAST_INSERT_ID()",
        "SELECT @@x FROM t",
        "SELECT @@x LIMIT 1, 2",
        "SELECT @@x; SET @a = 1",
        "SELECT @@x INTO @y",
        "SELECT 1",
        "SELECT",
        "SET @@session.sql_mode = ''",
        "SHOW STATUS",
        "SHOW SESSION STATUS LIKE 'x'",
        "SHOW VARIABLES LIKE @x",
        "SHOW VARIABLES WHERE Variable_name = GET_LOCK('a', 1)",
        "SHOW VARIABLES WHERE 1; SELECT 1",
        "SELECT /*!40001 SQL_NO_CACHE */ @@x",
        "",
    ] {
        assert!(!is_pure_variable_read(sql.as_bytes()), "{sql}");
    }
    let long = format!("SELECT @@x{}", ", @@y".repeat(200));
    assert!(!is_pure_variable_read(long.as_bytes()));
}
