//! The admin protocol, shared by the daemon and `tidepool admin`: one command per line in,
//! one response out (a text table, or one line of JSON when the command ends with `--json`).

use crate::registry::{ClientRow, PoolRow, StatsRow, UpstreamRow};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    ShowPools,
    ShowClients,
    ShowUpstreams,
    ShowLeaks,
    ShowStats,
    ShowConfig,
    ShowVersion,
    Kill(u64),
    Pause(Option<String>),
    Resume(Option<String>),
    Reload,
    Shutdown { now: bool },
    Help,
}

/// Every command, as `help` prints it.
pub const USAGE: &str = "\
show pools              clients and upstream connections per pool, health, alerts
show clients            every client session: state, pin reason, idle time, last command
show upstreams          upstream health, last error, connections, the server's own count/limit
show leaks              sessions holding an upstream while idle past leak_threshold
show stats              commands, bytes, latency avg/p99, acquire waits, errors since start
show config             the running configuration (secrets redacted)
show version            version of the running proxy
kill <client-id>        close a client session (it is told why)
pause [pool]            hold new work (all pools by default); waits for open transactions
resume [pool]           release held work
reload                  re-read the config file (the same as SIGHUP)
shutdown [--now]        drain and stop (the same as SIGTERM); --now closes clients at once
help                    this list
Add --json to any command for JSON output.";

impl Request {
    /// Parses one command line; returns the request and whether JSON was asked for.
    pub fn parse(line: &str) -> Result<(Request, bool), String> {
        let mut words: Vec<&str> = line.split_whitespace().collect();
        let json = words.contains(&"--json");
        words.retain(|w| *w != "--json");
        let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
        let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
        let req = match lower.as_slice() {
            ["show", "pools"] => Request::ShowPools,
            ["show", "clients"] => Request::ShowClients,
            ["show", "upstreams"] => Request::ShowUpstreams,
            ["show", "leaks"] => Request::ShowLeaks,
            ["show", "stats"] => Request::ShowStats,
            ["show", "config"] => Request::ShowConfig,
            ["show", "version"] => Request::ShowVersion,
            ["show", other] => return Err(format!("unknown: show {other} (try: help)")),
            ["kill", id] => Request::Kill(
                id.parse()
                    .map_err(|_| format!("kill: {id:?} is not a client id (see show clients)"))?,
            ),
            ["pause"] => Request::Pause(None),
            ["pause", _] => Request::Pause(Some(words[1].to_string())),
            ["resume"] => Request::Resume(None),
            ["resume", _] => Request::Resume(Some(words[1].to_string())),
            ["reload"] => Request::Reload,
            ["shutdown"] => Request::Shutdown { now: false },
            ["shutdown", "--now"] => Request::Shutdown { now: true },
            ["help"] => Request::Help,
            [] => return Err("empty command (try: help)".into()),
            _ => return Err(format!("unknown command: {} (try: help)", words.join(" "))),
        };
        Ok((req, json))
    }

    /// The canonical line for this request (what the CLI sends).
    pub fn to_line(&self, json: bool) -> String {
        let mut s = match self {
            Request::ShowPools => "show pools".to_string(),
            Request::ShowClients => "show clients".into(),
            Request::ShowUpstreams => "show upstreams".into(),
            Request::ShowLeaks => "show leaks".into(),
            Request::ShowStats => "show stats".into(),
            Request::ShowConfig => "show config".into(),
            Request::ShowVersion => "show version".into(),
            Request::Kill(id) => format!("kill {id}"),
            Request::Pause(p) => format!("pause {}", p.as_deref().unwrap_or("")),
            Request::Resume(p) => format!("resume {}", p.as_deref().unwrap_or("")),
            Request::Reload => "reload".into(),
            Request::Shutdown { now } => format!("shutdown{}", if *now { " --now" } else { "" }),
            Request::Help => "help".into(),
        };
        if json {
            s.push_str(" --json");
        }
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Pools(Vec<PoolRow>),
    Clients(Vec<ClientRow>),
    Leaks(Vec<ClientRow>),
    Upstreams(Vec<UpstreamRow>),
    Stats(Vec<StatsRow>),
    Config(String),
    Version(String),
    Help(String),
    Ok(String),
    Error(String),
}

impl Response {
    pub fn is_error(&self) -> bool {
        matches!(self, Response::Error(_))
    }

    /// The response as sent: one JSON line, or text ending with a newline.
    pub fn render(&self, json: bool) -> String {
        if json {
            let mut s = serde_json::to_string(self)
                .unwrap_or_else(|e| format!("{{\"error\":\"cannot encode response: {e}\"}}"));
            s.push('\n');
            s
        } else {
            super::render::text(self)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_json_anywhere_and_round_trip() {
        for line in [
            "show pools",
            "show clients --json",
            "kill 17",
            "pause sessions",
            "resume",
            "shutdown --now",
            "reload --json",
        ] {
            let (req, json) = Request::parse(line).unwrap();
            assert_eq!(req.to_line(json), line);
        }
        assert_eq!(
            Request::parse("SHOW --json LEAKS").unwrap(),
            (Request::ShowLeaks, true)
        );
    }

    #[test]
    fn bad_commands_say_what_is_wrong() {
        assert!(
            Request::parse("kill me")
                .unwrap_err()
                .contains("not a client id")
        );
        assert!(
            Request::parse("show tables")
                .unwrap_err()
                .contains("show tables")
        );
        assert!(Request::parse("").unwrap_err().contains("empty"));
    }

    #[test]
    fn json_responses_are_tagged_by_kind() {
        let r = Response::Error("no client with id 3".into());
        assert_eq!(r.render(true), "{\"error\":\"no client with id 3\"}\n");
        let back: Response = serde_json::from_str(&r.render(true)).unwrap();
        assert_eq!(back, r);
    }
}
