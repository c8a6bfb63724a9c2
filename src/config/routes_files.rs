//! Static trunk and route files (API.md section 1, "Static trunks and routes"):
//! expanding the `proxy.trunks_files` / `proxy.routes_files` globs, reading each
//! file (`[trunks.<name>]` tables, `[[routes]]` arrays; unknown keys are errors)
//! and validating them together into a `shards::routing::RoutingSnapshot`.
//!
//! Control side: this reads files and may block. Errors are `ConfigError`s like
//! the main config's, `<file>:<line>: <key>: <reason>`, e.g.
//! `config/routes/x.toml:7: routes[1].dest[0]: unknown trunk "carrier-z"`.
//!
//! Console-managed (REST) trunks and routes live beside the file ones: the
//! console builds a [`RoutingSource::managed`] and passes it to
//! [`build_routing`] with the file sources; a name clash is an error.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use shards::routing::{RouteSpec, RoutingError, RoutingSnapshot, Subject, TrunkSpec};

use super::locate::{format_path, parse_path, Seg, SourceDoc};
use super::{error_at, read, typed, Config, ConfigError};

/// A trunk file: `[trunks.<name>]` tables.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrunksFile {
    #[serde(default)]
    trunks: BTreeMap<String, TrunkSpec>,
}

/// A route file: `[[routes]]` entries.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutesFile {
    #[serde(default)]
    routes: Vec<RouteSpec>,
}

/// Trunks and routes from one place (a file, or the console), parsed but not yet
/// validated against each other.
#[derive(Debug, Clone)]
pub struct RoutingSource {
    /// The file as named in errors, or a label such as `console`.
    pub file: PathBuf,
    /// (name, trunk); names in a file are unique (TOML tables).
    pub trunks: Vec<(String, TrunkSpec)>,
    /// In file order.
    pub routes: Vec<RouteSpec>,
    /// For line numbers; `None` for console entries.
    doc: Option<SourceDoc>,
}

impl RoutingSource {
    /// Parses a trunk file's text; `file` names it in errors.
    pub fn parse_trunks(file: &Path, text: &str) -> Result<RoutingSource, ConfigError> {
        let doc = SourceDoc::parse(file, text)?;
        let parsed: TrunksFile = typed(&doc)?;
        Ok(RoutingSource {
            file: file.to_path_buf(),
            trunks: parsed.trunks.into_iter().collect(),
            routes: Vec::new(),
            doc: Some(doc),
        })
    }

    /// Parses a route file's text; `file` names it in errors.
    pub fn parse_routes(file: &Path, text: &str) -> Result<RoutingSource, ConfigError> {
        let doc = SourceDoc::parse(file, text)?;
        let parsed: RoutesFile = typed(&doc)?;
        Ok(RoutingSource {
            file: file.to_path_buf(),
            trunks: Vec::new(),
            routes: parsed.routes,
            doc: Some(doc),
        })
    }

    /// Entries that do not come from a file (REST); errors name them by `label`
    /// without a line.
    pub fn managed(
        label: impl Into<PathBuf>,
        trunks: Vec<(String, TrunkSpec)>,
        routes: Vec<RouteSpec>,
    ) -> RoutingSource {
        RoutingSource {
            file: label.into(),
            trunks,
            routes,
            doc: None,
        }
    }
}

/// Reads the trunk and route files `cfg` names and validates them into a snapshot.
/// Relative patterns are taken relative to `base_dir` (the server passes its
/// working directory, as for `data_dir`; "" means the working directory too).
pub fn load_routing(cfg: &Config, base_dir: &Path) -> Result<RoutingSnapshot, ConfigError> {
    build_routing(&read_routing_files(cfg, base_dir)?)
}

/// The trunk files, then the route files, that `cfg` names, parsed: each glob of
/// `proxy.trunks_files` / `proxy.routes_files` expanded (a pattern that matches
/// nothing is fine; hidden files are skipped; a file matched twice is read
/// once), sorted by path.
pub fn read_routing_files(
    cfg: &Config,
    base_dir: &Path,
) -> Result<Vec<RoutingSource>, ConfigError> {
    let mut sources = read_trunk_files(cfg, base_dir)?;
    sources.extend(read_route_files(cfg, base_dir)?);
    Ok(sources)
}

/// The trunk files `cfg` names, parsed (see [`read_routing_files`]).
pub fn read_trunk_files(cfg: &Config, base_dir: &Path) -> Result<Vec<RoutingSource>, ConfigError> {
    let mut sources = Vec::new();
    for (open, name) in expand(cfg, "proxy.trunks_files", &cfg.proxy.trunks_files, base_dir)? {
        sources.push(RoutingSource::parse_trunks(&name, &read_as(&open, &name)?)?);
    }
    Ok(sources)
}

/// The route files `cfg` names, parsed (see [`read_routing_files`]).
pub fn read_route_files(cfg: &Config, base_dir: &Path) -> Result<Vec<RoutingSource>, ConfigError> {
    let mut sources = Vec::new();
    for (open, name) in expand(cfg, "proxy.routes_files", &cfg.proxy.routes_files, base_dir)? {
        sources.push(RoutingSource::parse_routes(&name, &read_as(&open, &name)?)?);
    }
    Ok(sources)
}

/// Validates trunks and routes from all sources together: trunk and route names
/// are unique across sources, routes refer to known trunks. Equal route
/// priorities keep source order, then file order.
pub fn build_routing(sources: &[RoutingSource]) -> Result<RoutingSnapshot, ConfigError> {
    // Where each entry came from: (source, position in the source).
    let mut trunks = Vec::new();
    let mut trunk_at = Vec::new();
    let mut routes = Vec::new();
    let mut route_at = Vec::new();
    for (s, src) in sources.iter().enumerate() {
        for t in &src.trunks {
            trunks.push(t.clone());
            trunk_at.push(s);
        }
        for (j, r) in src.routes.iter().enumerate() {
            routes.push(r.clone());
            route_at.push((s, j));
        }
    }
    RoutingSnapshot::build(&trunks, &routes).map_err(|e| {
        let (s, key, first_in) = match e.subject {
            Subject::Trunk => {
                let mut segs = vec![Seg::Key("trunks".into()), Seg::Key(e.name.clone())];
                segs.extend(parse_path(&e.field));
                let first = e.first.and_then(|f| trunk_at.get(f)).copied();
                (
                    trunk_at[e.index],
                    format_path(&segs),
                    first.map(|f| (f, None)),
                )
            }
            Subject::Route => {
                let (s, j) = route_at[e.index];
                let mut segs = vec![Seg::Key("routes".into()), Seg::Index(j)];
                segs.extend(parse_path(&e.field));
                let first = e.first.and_then(|f| route_at.get(f)).copied();
                (s, format_path(&segs), first.map(|(f, j)| (f, Some(j))))
            }
        };
        locate(&sources[s], &key, reason(&e, s, first_in, sources))
    })
}

/// The reason of a routing error; for a duplicate, where the first one is.
fn reason(
    e: &RoutingError,
    s: usize,
    first: Option<(usize, Option<usize>)>,
    sources: &[RoutingSource],
) -> String {
    match first {
        Some((f, _)) if f != s => format!("{} (also in {})", e.reason, sources[f].file.display()),
        Some((_, Some(j))) => format!("{} (also routes[{j}])", e.reason),
        _ => e.reason.clone(),
    }
}

/// A `ConfigError` at `key` of `src`, with the line where the file has it.
fn locate(src: &RoutingSource, key: &str, reason: String) -> ConfigError {
    match &src.doc {
        Some(doc) => error_at(std::slice::from_ref(doc), key, reason),
        None => ConfigError::new(&src.file, None, key, reason),
    }
}

/// The files matched by `patterns` (config key `key`), as (path to open, name
/// for errors), sorted by name, each once.
fn expand(
    cfg: &Config,
    key: &str,
    patterns: &[String],
    base_dir: &Path,
) -> Result<Vec<(PathBuf, PathBuf)>, ConfigError> {
    let opts = glob::MatchOptions {
        require_literal_leading_dot: true,
        ..glob::MatchOptions::new()
    };
    let mut found = BTreeSet::new();
    for (i, pattern) in patterns.iter().enumerate() {
        let relative = Path::new(pattern).is_relative() && !base_dir.as_os_str().is_empty();
        let full = if relative {
            let base = glob::Pattern::escape(&base_dir.to_string_lossy());
            format!("{}/{pattern}", base.trim_end_matches('/'))
        } else {
            pattern.clone()
        };
        let paths = glob::glob_with(&full, opts).map_err(|e| {
            error_at(
                &cfg.sources,
                &format!("{key}[{i}]"),
                format!("invalid glob pattern: {}", e.msg),
            )
        })?;
        for entry in paths {
            let open = entry.map_err(|e| {
                ConfigError::new(e.path(), None, "", format!("cannot read: {}", e.error()))
            })?;
            let name = match open.strip_prefix(base_dir) {
                Ok(rel) if relative => rel.to_path_buf(),
                _ => open.clone(),
            };
            found.insert((name, open));
        }
    }
    Ok(found.into_iter().map(|(name, open)| (open, name)).collect())
}

/// Reads `open`, naming it `name` in errors.
fn read_as(open: &Path, name: &Path) -> Result<String, ConfigError> {
    read(open).map_err(|e| ConfigError {
        file: name.to_path_buf(),
        ..e
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shards::routing::{Outcome, RequestFields, SelectState};

    fn repo() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    /// A temp dir with `files` (relative path, text) written into it.
    fn dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (rel, text) in files {
            let p = d.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        d
    }

    fn load(files: &[(&str, &str)]) -> Result<RoutingSnapshot, ConfigError> {
        let d = dir(files);
        load_routing(&Config::default(), d.path())
    }

    fn load_err(files: &[(&str, &str)]) -> String {
        load(files).unwrap_err().to_string()
    }

    const CARRIERS: &str = r#"[trunks.carrier-a]
dest = "sip:203.0.113.10:5060"
inbound_hosts = ["203.0.113.0/24"]
max_calls = 2

[trunks.carrier-b]
dest = "sip:198.51.100.20"
transport = "tcp"
"#;

    const ROUTES: &str = r#"[[routes]]
name = "international"
priority = 100
match = { "to.user" = "^00(\\d+)$" }
rewrite = { "to.user" = "+{1}" }
action = "forward"
dest = ["carrier-a", "carrier-b"]
select = "failover"

[[routes]]
name = "blocklist"
priority = 200
match = { "from.user" = "^666" }
action = "reject"
reject = { code = 403, reason = "Blocked" }
"#;

    #[test]
    fn shipped_examples_give_an_empty_snapshot() {
        let cfg = Config::load(repo().join("config/shardpbx.toml")).unwrap();
        let s = load_routing(&cfg, repo()).unwrap_or_else(|e| panic!("{e}"));
        assert!(s.routes.is_empty() && s.trunks.is_empty());
        let files = read_routing_files(&cfg, repo()).unwrap();
        let names: Vec<_> = files.iter().map(|f| f.file.clone()).collect();
        assert!(
            names.contains(&PathBuf::from("config/trunks/example.toml")),
            "{names:?}"
        );
        assert!(
            names.contains(&PathBuf::from("config/routes/example.toml")),
            "{names:?}"
        );
    }

    #[test]
    fn shipped_examples_uncommented_load_and_route() {
        // The examples, uncommented, are a working pair.
        let uncomment = |rel: &str| -> String {
            std::fs::read_to_string(repo().join(rel))
                .unwrap()
                .lines()
                .filter_map(|l| l.strip_prefix("# ").or(l.strip_prefix("#")))
                .filter(|l| l.starts_with('[') || l.contains(" = "))
                .map(|l| format!("{l}\n"))
                .collect()
        };
        let s = load(&[
            (
                "config/trunks/example.toml",
                &uncomment("config/trunks/example.toml"),
            ),
            (
                "config/routes/example.toml",
                &uncomment("config/routes/example.toml"),
            ),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(s.trunks.by_name("carrier-a").is_some());
        assert!(s.routes.by_name("international").is_some());
    }

    #[test]
    fn two_trunk_files_and_a_route_file_load_and_route() {
        let s = load(&[
            ("config/trunks/carriers.toml", CARRIERS),
            (
                "config/trunks/pbx.toml",
                "[trunks.office]\ninbound_hosts = [\"192.0.2.7:5060\", \"2001:db8::/32\"]\n",
            ),
            ("config/routes/outbound.toml", ROUTES),
            ("config/routes/.hidden.toml", "not toml at all ["),
            ("config/routes/notes.txt", "ignored"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.trunks.len(), 3);
        assert_eq!(s.routes.len(), 2);
        let office = s.trunks.for_source("192.0.2.7:5060".parse().unwrap());
        assert_eq!(office.map(|t| &*t.name), Some("office"));
        let a = s
            .trunks
            .for_source("203.0.113.9:5060".parse().unwrap())
            .unwrap();
        assert_eq!(&*a.name, "carrier-a");
        assert_eq!(a.max_calls, 2);
        assert_eq!(
            s.trunks.by_name("carrier-b").unwrap().request_uri("1"),
            Some("sip:1@198.51.100.20".into())
        );

        let mut st = SelectState::new();
        let call = RequestFields {
            from_user: Some("1001"),
            to_user: Some("004930123"),
            ..RequestFields::default()
        };
        let d = s.routes.decide(&call, &mut st).unwrap();
        assert_eq!(&*d.route, "international");
        assert_eq!(d.rewrites[0].1, "+4930123");
        match &d.outcome {
            Outcome::Forward { targets, parallel } => {
                assert_eq!(
                    targets.iter().map(|t| &**t).collect::<Vec<_>>(),
                    ["carrier-a", "carrier-b"]
                );
                assert!(!parallel);
            }
            other => panic!("{other:?}"),
        }
        let spam = RequestFields {
            from_user: Some("666999"),
            ..call
        };
        let d = s.routes.decide(&spam, &mut st).unwrap();
        assert_eq!(
            d.outcome,
            Outcome::Reject {
                code: 403,
                reason: "Blocked".into()
            }
        );
    }

    #[test]
    fn no_files_is_fine() {
        let s = load(&[]).unwrap();
        assert!(s.routes.is_empty() && s.trunks.is_empty());
    }

    #[test]
    fn bad_files_name_file_line_and_key() {
        let t = "config/trunks/carriers.toml";
        let r = "config/routes/x.toml";
        let three_routes = format!(
            "{ROUTES}\n[[routes]]\nname = \"z\"\naction = \"forward\"\ndest = [\"carrier-z\"]\n"
        );
        let cases: Vec<(Vec<(&str, &str)>, String)> = vec![
            (
                vec![(t, "[trunks.a]\ndest = \"sip:10.0.0.1\"\nmax_call = 3\n")],
                format!("{t}:3: trunks.a.max_call: unknown key (did you mean `max_calls`?)"),
            ),
            (
                vec![(t, "[trunks.a]\ntransport = \"sctp\"\n")],
                format!("{t}:2: trunks.a.transport: unknown value `sctp`, expected one of `udp`, `tcp`, `tls`"),
            ),
            (
                vec![(t, "[trunks.a]\ninbound_hosts = [\n  \"10.0.0.1\",\n  \"pbx.example.com\",\n]\n")],
                format!("{t}:4: trunks.a.inbound_hosts[1]: \"pbx.example.com\" is not an IP, CIDR or ip:port (host names are not resolved)"),
            ),
            (
                vec![(t, "[trunks.a]\n\n[trunks.b]\ndest = \"http://x\"\n")],
                format!("{t}:4: trunks.b.dest: \"http://x\" must be a sip: or sips: URI"),
            ),
            (
                vec![("config/trunks/a.toml", "[trunks.a]\n"), ("config/trunks/b.toml", "\n[trunks.a]\n")],
                "config/trunks/b.toml:2: trunks.a: defined twice (also in config/trunks/a.toml)".into(),
            ),
            (
                vec![(t, "[trunks.a]\ninbound_hosts = [\"10.0.0.0/8\"]\n[trunks.b]\ninbound_hosts = [\"10.0.0.0/8\"]\n")],
                format!("{t}:4: trunks.b.inbound_hosts[0]: \"10.0.0.0/8\" is also listed by trunk \"a\""),
            ),
            (
                vec![(t, CARRIERS), (r, &three_routes)],
                format!("{r}:20: routes[2].dest[0]: unknown trunk \"carrier-z\""),
            ),
            (
                vec![(t, CARRIERS), (r, "[[routes]]\nname = \"intl\"\naction = \"forward\"\ndest = [\"carrier-a\"]\nmatch = { \"to.user\" = \"^00(\\\\d+$\" }\n")],
                format!("{r}:5: routes[0].match.\"to.user\": invalid regex: unclosed group"),
            ),
            (
                vec![(t, CARRIERS), (r, "[[routes]]\nname = \"w\"\naction = \"forward\"\ndest = [\"carrier-a\", \"carrier-b\"]\nselect = \"weighted\"\nweights = [3]\n")],
                format!("{r}:6: routes[0].weights: has 1 entries, dest has 2: one weight per trunk"),
            ),
            (
                vec![(r, "[[routes]]\nname = \"b\"\naction = \"reject\"\nreject = { code = 200 }\n")],
                format!("{r}:4: routes[0].reject.code: 200 is not 400-699"),
            ),
            (
                vec![(r, "[[routes]]\nname = \"b\"\naction = \"reject\"\nreject = { code = 403 }\n\n[[routes]]\nname = \"b\"\naction = \"reject\"\nreject = { code = 404 }\n")],
                format!("{r}:7: routes[1].name: defined twice (also routes[0])"),
            ),
            (
                vec![("config/routes/a.toml", "[[routes]]\nname = \"b\"\naction = \"reject\"\nreject = { code = 403 }\n"), (r, "[[routes]]\nname = \"b\"\naction = \"reject\"\nreject = { code = 404 }\n")],
                format!("{r}:2: routes[0].name: defined twice (also in config/routes/a.toml)"),
            ),
            (
                vec![(r, "[[routes]]\nname = \"b\"\naction = \"bounce\"\n")],
                format!("{r}:3: routes[0].action: unknown value `bounce`, expected `forward` or `reject`"),
            ),
            (
                vec![(r, "[[routes]]\nname = \"b\"\nselect = \"failover\"\n")],
                format!("{r}:1: routes[0]: missing field `action`"),
            ),
            (
                vec![(r, "[routes]\nname = 1\n")],
                format!("{r}:1: routes: invalid type: map, expected an array"),
            ),
            (
                vec![(r, "[[routes]]\nname = \"b\"\naction = = 1\n")],
                format!("{r}:3: invalid string; expected `\"`, `'`"),
            ),
            (
                vec![(t, "[[routes]]\nname = \"b\"\n")],
                format!("{t}:1: routes: unknown key"),
            ),
        ];
        let mut wrong = Vec::new();
        for (files, want) in cases {
            let got = load_err(&files);
            if got != want {
                wrong.push(format!("\n got: {got}\nwant: {want}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.concat());
    }

    #[test]
    fn bad_patterns_point_at_the_config() {
        let cfg = Config::parse(
            "shardpbx.toml",
            "[proxy]\nroutes_files = [\"config/routes/*.toml\", \"config/[x\"]\n",
        )
        .unwrap();
        let e = load_routing(&cfg, Path::new("")).unwrap_err();
        assert_eq!(e.file, PathBuf::from("shardpbx.toml"));
        assert_eq!(e.line, Some(2));
        assert_eq!(e.key, "proxy.routes_files[1]");
        assert!(e.reason.starts_with("invalid glob pattern"), "{e}");
    }

    #[test]
    fn console_entries_clash_with_file_entries() {
        let d = dir(&[("config/trunks/carriers.toml", CARRIERS)]);
        let mut sources = read_routing_files(&Config::default(), d.path()).unwrap();
        sources.push(RoutingSource::managed(
            "console",
            vec![("carrier-b".into(), TrunkSpec::default())],
            Vec::new(),
        ));
        let e = build_routing(&sources).unwrap_err();
        assert_eq!(
            e.to_string(),
            "console: trunks.carrier-b: defined twice (also in config/trunks/carriers.toml)"
        );
        sources.pop();
        sources.push(RoutingSource::managed(
            "console",
            vec![("carrier-c".into(), TrunkSpec::default())],
            Vec::new(),
        ));
        assert_eq!(build_routing(&sources).unwrap().trunks.len(), 3);
    }

    #[test]
    fn absolute_patterns_keep_their_path() {
        let d = dir(&[("t/a.toml", "[trunks.a]\nmax_cps = -1\n")]);
        let mut cfg = Config::default();
        cfg.proxy.trunks_files = vec![format!("{}/t/*.toml", d.path().display())];
        let e = load_routing(&cfg, Path::new("/elsewhere")).unwrap_err();
        assert_eq!(e.file, d.path().join("t/a.toml"));
        assert_eq!((e.line, e.key.as_str()), (Some(2), "trunks.a.max_cps"));
    }
}
