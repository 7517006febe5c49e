//! A lexical scanner for SQL text — not a parser — for the session engine's questions about a
//! statement: its first keyword, whether it calls `GET_LOCK()` & co., whether it is a pure
//! read of variables, and a literal-free rendering for the operator view.
//!
//! Strings (`'…'`, `"…"` with doubled quotes and backslash escapes), quoted identifiers
//! (`` `…` ``) and comments (`-- `, `#`, `/* */`) are skipped; the bodies of executable
//! comments (`/*! … */`, `/*!50100 … */`, MariaDB's `/*M! … */`) are code and are scanned.
//! Input is bytes in any ASCII-compatible client charset; it never panics.

/// One lexical token; slices borrow from the SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token<'a> {
    /// An unquoted identifier or keyword.
    Word(&'a [u8]),
    /// A backquoted identifier, quotes included.
    QuotedIdent(&'a [u8]),
    /// A string literal, quotes and any `X`/`B`/`N` prefix included.
    String(&'a [u8]),
    Number(&'a [u8]),
    /// `@name`, `@@name`, `@@session.name`, `@'quoted'`.
    Variable(&'a [u8]),
    /// Any other single byte (operators, parentheses, `,`, `;`, `?` …).
    Punct(u8),
}

/// A token and where it starts and ends in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spanned<'a> {
    pub token: Token<'a>,
    pub start: usize,
    pub end: usize,
}

/// Iterates over the tokens of a statement.
#[derive(Debug, Clone)]
pub struct Lexer<'a> {
    sql: &'a [u8],
    pos: usize,
    in_executable_comment: bool,
    backslash_escapes: bool,
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

impl<'a> Lexer<'a> {
    pub fn new(sql: &'a [u8]) -> Self {
        Self {
            sql,
            pos: 0,
            in_executable_comment: false,
            backslash_escapes: true,
        }
    }

    /// Under `NO_BACKSLASH_ESCAPES` (status flag `SERVER_STATUS_NO_BACKSLASH_ESCAPES`) a
    /// backslash inside a string is an ordinary character.
    pub fn backslash_escapes(mut self, enabled: bool) -> Self {
        self.backslash_escapes = enabled;
        self
    }

    fn at(&self, offset: usize) -> Option<u8> {
        self.sql.get(self.pos + offset).copied()
    }

    fn starts_with(&self, s: &[u8]) -> bool {
        self.sql
            .get(self.pos..)
            .is_some_and(|rest| rest.starts_with(s))
    }

    fn skip_while(&mut self, f: impl Fn(u8) -> bool) {
        while self.at(0).is_some_and(&f) {
            self.pos += 1;
        }
    }

    /// Skips whitespace and comments; enters and leaves executable comments.
    fn skip_trivia(&mut self) {
        loop {
            self.skip_while(|b| b.is_ascii_whitespace());
            if self.starts_with(b"/*!") || self.starts_with(b"/*M!") {
                self.pos += if self.at(2) == Some(b'M') { 4 } else { 3 };
                self.skip_while(|b| b.is_ascii_digit());
                self.in_executable_comment = true;
            } else if self.starts_with(b"/*") {
                self.pos = match find(&self.sql[self.pos + 2..], b"*/") {
                    Some(i) => self.pos + 2 + i + 2,
                    None => self.sql.len(),
                };
            } else if self.in_executable_comment && self.starts_with(b"*/") {
                self.pos += 2;
                self.in_executable_comment = false;
            } else if self.starts_with(b"--")
                && self
                    .at(2)
                    .is_none_or(|b| b.is_ascii_whitespace() || b.is_ascii_control())
                || self.at(0) == Some(b'#')
            {
                self.skip_while(|b| b != b'\n');
            } else {
                return;
            }
        }
    }

    /// Skips a quoted run starting at the opening `quote`.
    fn skip_quoted(&mut self, quote: u8) {
        let escapes = self.backslash_escapes && quote != b'`';
        self.pos += 1;
        while let Some(b) = self.at(0) {
            self.pos += 1;
            if b == b'\\' && escapes {
                self.pos = (self.pos + 1).min(self.sql.len());
            } else if b == quote {
                if self.at(0) != Some(quote) {
                    return;
                }
                self.pos += 1;
            }
        }
    }

    fn number(&mut self) {
        if self.at(0) == Some(b'0') && matches!(self.at(1), Some(b'x' | b'X' | b'b' | b'B')) {
            self.pos += 2;
            self.skip_while(|b| b.is_ascii_hexdigit());
            return;
        }
        self.skip_while(|b| b.is_ascii_digit());
        if self.at(0) == Some(b'.') {
            self.pos += 1;
            self.skip_while(|b| b.is_ascii_digit());
        }
        if matches!(self.at(0), Some(b'e' | b'E'))
            && (self.at(1).is_some_and(|b| b.is_ascii_digit())
                || matches!(self.at(1), Some(b'+' | b'-'))
                    && self.at(2).is_some_and(|b| b.is_ascii_digit()))
        {
            self.pos += 2;
            self.skip_while(|b| b.is_ascii_digit());
        }
    }
}

impl<'a> Iterator for Lexer<'a> {
    type Item = Spanned<'a>;

    fn next(&mut self) -> Option<Spanned<'a>> {
        self.skip_trivia();
        let start = self.pos;
        let first = self.at(0)?;
        let token = match first {
            b'\'' | b'"' => {
                self.skip_quoted(first);
                Token::String(&self.sql[start..self.pos])
            }
            b'`' => {
                self.skip_quoted(first);
                Token::QuotedIdent(&self.sql[start..self.pos])
            }
            b'x' | b'X' | b'b' | b'B' | b'n' | b'N' if self.at(1) == Some(b'\'') => {
                self.pos += 1;
                self.skip_quoted(b'\'');
                Token::String(&self.sql[start..self.pos])
            }
            b'@' => {
                self.pos += if self.at(1) == Some(b'@') { 2 } else { 1 };
                match self.at(0) {
                    Some(q @ (b'\'' | b'"' | b'`')) => self.skip_quoted(q),
                    _ => self.skip_while(|b| is_ident_byte(b) || b == b'.'),
                }
                Token::Variable(&self.sql[start..self.pos])
            }
            b'0'..=b'9' => {
                self.number();
                if self.at(0).is_some_and(is_ident_byte) {
                    // An identifier that starts with digits, like `1st_table`.
                    self.skip_while(is_ident_byte);
                    Token::Word(&self.sql[start..self.pos])
                } else {
                    Token::Number(&self.sql[start..self.pos])
                }
            }
            b'.' if self.at(1).is_some_and(|b| b.is_ascii_digit()) => {
                self.number();
                Token::Number(&self.sql[start..self.pos])
            }
            b if is_ident_byte(b) => {
                self.skip_while(is_ident_byte);
                Token::Word(&self.sql[start..self.pos])
            }
            b => {
                self.pos += 1;
                Token::Punct(b)
            }
        };
        Some(Spanned {
            token,
            start,
            end: self.pos,
        })
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn tokens(sql: &[u8]) -> impl Iterator<Item = Token<'_>> {
    Lexer::new(sql).map(|s| s.token)
}

fn is_word(token: Token<'_>, word: &str) -> bool {
    matches!(token, Token::Word(w) if w.eq_ignore_ascii_case(word.as_bytes()))
}

/// The statement's first keyword, uppercased (`(SELECT …)` → `SELECT`); `None` if the text
/// does not start with a word.
pub fn first_keyword(sql: &[u8]) -> Option<String> {
    match tokens(sql).find(|t| *t != Token::Punct(b'('))? {
        Token::Word(w) => Some(String::from_utf8_lossy(w).to_ascii_uppercase()),
        _ => None,
    }
}

/// True if the statement calls function `name` (case-insensitive; whitespace and comments may
/// separate the name from `(`) outside strings, identifiers and comments.
pub fn calls_function(sql: &[u8], name: &str) -> bool {
    let mut previous_matches = false;
    for token in tokens(sql) {
        if previous_matches && token == Token::Punct(b'(') {
            return true;
        }
        previous_matches = is_word(token, name);
    }
    false
}

/// True if `keyword` appears as a word outside strings, identifiers and comments.
pub fn mentions_keyword(sql: &[u8], keyword: &str) -> bool {
    tokens(sql).any(|t| is_word(t, keyword))
}

/// The statement with string and numeric literals replaced by `?`, comments dropped,
/// whitespace collapsed, and cut to at most `max_len` characters (ending in `…` when cut).
pub fn mask_literals(sql: &[u8], max_len: usize) -> String {
    let mut out = String::new();
    let mut previous_end = 0;
    for Spanned { token, start, end } in Lexer::new(sql) {
        if start > previous_end && !out.is_empty() {
            out.push(' ');
        }
        previous_end = end;
        match token {
            Token::String(_) | Token::Number(_) => out.push('?'),
            Token::Punct(b) if b.is_ascii() => out.push(char::from(b)),
            _ => out.push_str(&String::from_utf8_lossy(&sql[start..end])),
        }
        if out.len() > max_len.saturating_mul(4) {
            break; // enough to cut from, whatever the characters' widths
        }
    }
    if out.chars().count() > max_len {
        out = out.chars().take(max_len.saturating_sub(1)).collect();
        if max_len > 0 {
            out.push('…');
        }
    }
    out
}

/// Statements longer than this are never pure variable reads (keeps the check cheap).
const PURE_READ_MAX_TOKENS: usize = 256;

/// True for statements that only read server or session variables, which any upstream with
/// the client's replayed state answers the same: `SELECT @@x [, @@session.y [AS] z …]
/// [FROM DUAL] [LIMIT n]`, `SELECT DATABASE()` / `SCHEMA()` / `VERSION()`, and
/// `SHOW [SESSION|GLOBAL|LOCAL] VARIABLES [LIKE '…' | WHERE …]`. User variables
/// (`@x`) and `CONNECTION_ID()` (it differs per upstream) are not pure.
pub fn is_pure_variable_read(sql: &[u8]) -> bool {
    let mut toks: Vec<Token<'_>> = tokens(sql).take(PURE_READ_MAX_TOKENS + 1).collect();
    if toks.len() > PURE_READ_MAX_TOKENS {
        return false;
    }
    while toks.last() == Some(&Token::Punct(b';')) {
        toks.pop();
    }
    match toks.split_first() {
        Some((first, rest)) if is_word(*first, "SELECT") => is_variable_select(rest),
        Some((first, rest)) if is_word(*first, "SHOW") => is_show_variables(rest),
        _ => false,
    }
}

const PURE_FUNCTIONS: [&str; 3] = ["DATABASE", "SCHEMA", "VERSION"];

fn is_variable_select(mut t: &[Token<'_>]) -> bool {
    loop {
        // One select item.
        t = match t {
            [Token::Variable(v), rest @ ..] if v.starts_with(b"@@") => rest,
            [f, Token::Punct(b'('), Token::Punct(b')'), rest @ ..]
                if PURE_FUNCTIONS.iter().any(|name| is_word(*f, name)) =>
            {
                rest
            }
            _ => return false,
        };
        // An optional alias.
        t = match t {
            [
                a,
                Token::Word(_) | Token::QuotedIdent(_) | Token::String(_),
                rest @ ..,
            ] if is_word(*a, "AS") => rest,
            [Token::QuotedIdent(_) | Token::String(_), rest @ ..] => rest,
            [w @ Token::Word(_), rest @ ..] if !is_word(*w, "FROM") && !is_word(*w, "LIMIT") => {
                rest
            }
            _ => t,
        };
        match t {
            [Token::Punct(b','), rest @ ..] => t = rest,
            _ => break,
        }
    }
    if let [from, dual, rest @ ..] = t {
        if is_word(*from, "FROM") && is_word(*dual, "DUAL") {
            t = rest;
        }
    }
    match t {
        [] => true,
        [limit, Token::Number(_)] => is_word(*limit, "LIMIT"),
        _ => false,
    }
}

fn is_show_variables(mut t: &[Token<'_>]) -> bool {
    if let [scope, rest @ ..] = t {
        if ["SESSION", "GLOBAL", "LOCAL"]
            .iter()
            .any(|s| is_word(*scope, s))
        {
            t = rest;
        }
    }
    match t {
        [v] => is_word(*v, "VARIABLES"),
        [v, like, Token::String(_)] => is_word(*v, "VARIABLES") && is_word(*like, "LIKE"),
        [v, w, condition @ ..] if is_word(*v, "VARIABLES") && is_word(*w, "WHERE") => {
            // Any function call but `IN (…)` could have side effects: not pure.
            condition.windows(2).all(|pair| {
                !matches!(pair, [Token::Word(_), Token::Punct(b'(')]) || is_word(pair[0], "IN")
            }) && !condition
                .iter()
                .any(|t| matches!(t, Token::Punct(b';') | Token::Variable(_)))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
