//! Tests of config errors: a table of bad configs and bad perf profiles, each
//! failing with the expected file, line, dotted key and reason on one line;
//! syntax errors; unreadable files.

use std::path::Path;

use super::*;

fn shipped() -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/shardpbx.toml");
    Config::load(path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn missing_files_are_reported() {
    let e = Config::load("/nonexistent/shardpbx.toml").unwrap_err();
    assert!(e
        .to_string()
        .starts_with("/nonexistent/shardpbx.toml: cannot read:"));
    let e = Config::default()
        .apply_profile("/nonexistent/p.toml")
        .unwrap_err();
    assert!(e
        .to_string()
        .starts_with("/nonexistent/p.toml: cannot read:"));
}

/// (name, config text, line, key, reason fragment)
const BAD_CONFIGS: &[(&str, &str, usize, &str, &str)] = &[
    (
        "unknown top-level key",
        "data_dir = \"d\"\nhttp_adr = \"127.0.0.1:8080\"\n",
        2,
        "http_adr",
        "unknown key (did you mean `http_addr`?)",
    ),
    (
        "unknown nested key",
        "[proxy]\naddr = \"0.0.0.0\"\nudp_portt = 5060\n",
        3,
        "proxy.udp_portt",
        "unknown key (did you mean `udp_port`?)",
    ),
    (
        "unknown table",
        "[proxi]\nudp_port = 5060\n",
        1,
        "proxi",
        "unknown key (did you mean `proxy`?)",
    ),
    (
        "unknown key deep in an array of tables",
        "[[proxy.user_backends]]\ntype = \"memory\"\nusers = [\n  { username = \"1\", password = \"p\" },\n  { username = \"2\", pasword = \"p\" },\n]\n",
        5,
        "proxy.user_backends[0].users[1].pasword",
        "unknown key (did you mean `password`?)",
    ),
    (
        "wrong type",
        "[proxy]\nudp_port = \"5060\"\n",
        2,
        "proxy.udp_port",
        "invalid type: string \"5060\", expected an integer 0-65535",
    ),
    (
        "wrong type for a table",
        "proxy = 5\n",
        1,
        "proxy",
        "expected a table",
    ),
    (
        "port out of range",
        "[proxy]\nudp_port = 70000\n",
        2,
        "proxy.udp_port",
        "expected an integer 0-65535",
    ),
    ("port zero", "[proxy]\nudp_port = 0\n", 2, "proxy.udp_port", "must be 1-65535"),
    (
        "bad listen address",
        "[proxy]\naddr = \"0.0.0\"\n",
        2,
        "proxy.addr",
        "invalid IP address",
    ),
    (
        "bad http_addr",
        "http_addr = \"localhost:8080\"\n",
        1,
        "http_addr",
        "invalid socket address",
    ),
    (
        "http_addr port zero",
        "http_addr = \"127.0.0.1:0\"\n",
        1,
        "http_addr",
        "port must be 1-65535",
    ),
    (
        "bad log level",
        "log_level = \"verbose\"\n",
        1,
        "log_level",
        "unknown value `verbose`",
    ),
    (
        "min_expires above max_expires",
        "[proxy]\nregistrar_expires = 3600\n\nmin_expires = 8000\n",
        4,
        "proxy.min_expires",
        "must not exceed proxy.max_expires (7200)",
    ),
    (
        "max_expires below the default min_expires",
        "[proxy]\nmax_expires = 30\n",
        2,
        "proxy.max_expires",
        "must not be less than proxy.min_expires (60)",
    ),
    (
        "registrar_expires above max_expires",
        "[proxy]\nregistrar_expires = 9000\n",
        2,
        "proxy.registrar_expires",
        "must not exceed proxy.max_expires (7200)",
    ),
    (
        "max_expires below the default registrar_expires",
        "[proxy]\nmax_expires = 1800\n",
        2,
        "proxy.max_expires",
        "must not be less than proxy.registrar_expires (3600)",
    ),
    (
        "min_expires zero",
        "[proxy]\nmin_expires = 0\n",
        2,
        "proxy.min_expires",
        "must be at least 1",
    ),
    (
        "bad acl rule",
        "[proxy]\nacl_rules = [\n  \"deny 10.0.0.0/8\",\n  \"permit 1.2.3.4\",\n]\n",
        4,
        "proxy.acl_rules[1]",
        "is not \"allow|deny <ip|cidr|all>\"",
    ),
    (
        "bad acl cidr",
        "[proxy]\nacl_rules = [\"allow 10.0.0.0/40\"]\n",
        2,
        "proxy.acl_rules[0]",
        "prefix /40 is longer than /32",
    ),
    (
        "bad digest algorithm",
        "[proxy]\ndigest_algorithms = [\"MD5\", \"SHA-1\"]\n",
        2,
        "proxy.digest_algorithms[1]",
        "unknown value `SHA-1`, expected `MD5` or `SHA-256`",
    ),
    (
        "no digest algorithm",
        "[proxy]\ndigest_algorithms = []\n",
        2,
        "proxy.digest_algorithms",
        "must offer at least one",
    ),
    (
        "duplicate digest algorithm",
        "[proxy]\ndigest_algorithms = [\"MD5\", \"MD5\"]\n",
        2,
        "proxy.digest_algorithms[1]",
        "MD5 is listed twice",
    ),
    (
        "bad media_proxy",
        "[proxy]\nmedia_proxy = \"sometimes\"\n",
        2,
        "proxy.media_proxy",
        "expected one of `auto`, `always`, `none`, `nat`",
    ),
    (
        "bad realm",
        "[proxy]\nrealms = [\"pbx.example.com\", \"bad realm!\"]\n",
        2,
        "proxy.realms[1]",
        "\"bad realm!\" is not a valid hostname or IP address",
    ),
    (
        "realm with port",
        "[proxy]\nrealms = [\n  \"pbx.example.com:5060\",\n]\n",
        3,
        "proxy.realms[0]",
        "not a valid hostname",
    ),
    (
        "bad external_ip",
        "[proxy]\nexternal_ip = \"pbx.example.com\"\n",
        2,
        "proxy.external_ip",
        "is not an IP address",
    ),
    (
        "empty routes pattern",
        "[proxy]\nroutes_files = [\"\"]\n",
        2,
        "proxy.routes_files[0]",
        "must not be empty",
    ),
    (
        "user backend without type",
        "[proxy]\n[[proxy.user_backends]]\nusers = []\n",
        2,
        "proxy.user_backends[0].type",
        "missing; one of \"memory\", \"http\", \"extensions\"",
    ),
    (
        "bad user backend type",
        "[[proxy.user_backends]]\ntype = \"ldap\"\n",
        2,
        "proxy.user_backends[0].type",
        "unknown value `ldap`",
    ),
    (
        "duplicate memory user",
        "[[proxy.user_backends]]\ntype = \"memory\"\nusers = [\n  { username = \"1001\", password = \"a\" },\n  { username = \"1001\", password = \"b\" },\n]\n",
        5,
        "proxy.user_backends[0].users[1].username",
        "\"1001\" appears twice",
    ),
    (
        "empty memory username",
        "[[proxy.user_backends]]\ntype = \"memory\"\nusers = [{ username = \"\", password = \"a\" }]\n",
        3,
        "proxy.user_backends[0].users[0].username",
        "must not be empty",
    ),
    (
        "http key on a memory backend",
        "[[proxy.user_backends]]\ntype = \"memory\"\nurl = \"http://x\"\n",
        3,
        "proxy.user_backends[0].url",
        "not a key of type = \"memory\" (only of type = \"http\")",
    ),
    (
        "http backend without url",
        "[[proxy.user_backends]]\ntype = \"extensions\"\n[[proxy.user_backends]]\ntype = \"http\"\n",
        3,
        "proxy.user_backends[1].url",
        "required for type = \"http\"",
    ),
    (
        "http backend with a bad url",
        "[[proxy.user_backends]]\ntype = \"http\"\nurl = \"ftp://auth.example.com\"\n",
        3,
        "proxy.user_backends[0].url",
        "scheme must be http or https",
    ),
    (
        "bad header name",
        "[proxy.http_router]\nurl = \"http://127.0.0.1:9000/route\"\n[proxy.http_router.headers]\n\"X Bad\" = \"v\"\n",
        4,
        "proxy.http_router.headers.\"X Bad\"",
        "not a valid HTTP header name",
    ),
    (
        "http_router with a bad url",
        "[proxy.http_router]\nurl = \"127.0.0.1:9000/route\"\n",
        2,
        "proxy.http_router.url",
        "expected http:// or https://",
    ),
    (
        "http_router without url",
        "[proxy.http_router]\ntimeout_ms = 100\n",
        1,
        "proxy.http_router.url",
        "required",
    ),
    (
        "locator webhook without events",
        "[proxy.locator_webhook]\nurl = \"http://127.0.0.1:9000/events\"\nevents = []\n",
        3,
        "proxy.locator_webhook.events",
        "must list at least one",
    ),
    (
        "bad locator event",
        "[proxy.locator_webhook]\nurl = \"http://127.0.0.1:9000/events\"\nevents = [\"registered\", \"moved\"]\n",
        3,
        "proxy.locator_webhook.events[1]",
        "unknown value `moved`",
    ),
    (
        "http callrecord without url",
        "[ami]\nallows = []\n\n[callrecord]\ntype = \"http\"\nwith_media = false\n",
        4,
        "callrecord.url",
        "required for type = \"http\"",
    ),
    (
        "s3 callrecord without bucket",
        "[callrecord]\ntype = \"s3\"\nregion = \"us-east-1\"\n",
        1,
        "callrecord.bucket",
        "required for type = \"s3\"",
    ),
    (
        "s3 callrecord without region",
        "[callrecord]\ntype = \"s3\"\nbucket = \"cdr\"\n",
        1,
        "callrecord.region",
        "required for type = \"s3\"",
    ),
    (
        "s3 callrecord with a bad endpoint",
        "[callrecord]\ntype = \"s3\"\nbucket = \"cdr\"\nregion = \"us-east-1\"\nendpoint = \"minio:9000\"\n",
        5,
        "callrecord.endpoint",
        "is not a valid http(s) URL",
    ),
    (
        "s3 access key without secret",
        "[callrecord]\ntype = \"s3\"\nbucket = \"cdr\"\nregion = \"us-east-1\"\naccess_key = \"AK\"\n",
        1,
        "callrecord.secret_key",
        "set together",
    ),
    (
        "s3 key on an http callrecord",
        "[callrecord]\ntype = \"http\"\nurl = \"http://x/cdr\"\nbucket = \"cdr\"\n",
        4,
        "callrecord.bucket",
        "not a key of type = \"http\" (only of type = \"s3\")",
    ),
    (
        "too many shards",
        "[runtime]\nshards = 1025\n",
        2,
        "runtime.shards",
        "must be at most 1024",
    ),
    (
        "cpu that does not exist",
        "[runtime]\ncpus = [0, 4095]\n",
        2,
        "runtime.cpus[1]",
        "CPU 4095 does not exist or is offline (online: ",
    ),
    (
        "cpus and shards disagree",
        "[runtime]\nshards = 2\ncpus = [0]\n",
        3,
        "runtime.cpus",
        "has 1 entry but runtime.shards = 2",
    ),
    (
        "overload delay beyond a credible one",
        "[proxy]\noverload_max_delay_ms = 60000\n",
        2,
        "proxy.overload_max_delay_ms",
        "must be 0-30000, not 60000",
    ),
    (
        "overload on more stalled INVITEs than a shard could hold",
        "[proxy]\noverload_max_stalled_invites = 2000000\n",
        2,
        "proxy.overload_max_stalled_invites",
        "must be 0-1000000, not 2000000",
    ),
    (
        "overload 503 without a retry time",
        "[proxy]\noverload_retry_after_secs = 0\n",
        2,
        "proxy.overload_retry_after_secs",
        "must be 1-3600, not 0",
    ),
    (
        "tls key without its certificate",
        "[proxy]\ntls_port = 5061\ntls_key = \"k.pem\"\n",
        3,
        "proxy.tls_key",
        "needs tls_cert too",
    ),
    (
        "two stream listeners on one port",
        "[proxy]\ntls_port = 5061\nwss_port = 5061\n",
        3,
        "proxy.wss_port",
        "5061 is proxy.tls_port already",
    ),
    (
        "a websocket origin that is not one",
        "[proxy]\nws_origins = [\"crm.example.com\"]\n",
        2,
        "proxy.ws_origins[0]",
        "an origin (http[s]://host[:port])",
    ),
    (
        "tcp idle zero",
        "[proxy]\ntcp_idle_secs = 0\n",
        2,
        "proxy.tcp_idle_secs",
        "must be 1-86400",
    ),
    (
        "zero batch",
        "[runtime]\nudp_recv_batch = 0\n",
        2,
        "runtime.udp_recv_batch",
        "must be 1-1024, not 0",
    ),
    (
        "odd rtp start",
        "[media]\nrtp_port_start = 20001\n",
        2,
        "media.rtp_port_start",
        "must be even",
    ),
    (
        "rtp end before start",
        "[media]\nrtp_port_start = 30000\nrtp_port_end = 30000\n",
        3,
        "media.rtp_port_end",
        "must be greater than media.rtp_port_start (30000)",
    ),
    (
        "rtp range too small for the shards",
        "[runtime]\nshards = 3\n[media]\nrtp_port_start = 30000\nrtp_port_end = 30005\n",
        5,
        "media.rtp_port_end",
        "has 5 ports, fewer than 2 per shard for 3 shards",
    ),
    (
        "rtp range holds the sip port",
        "[media]\nrtp_port_start = 5000\nrtp_port_end = 6000\n",
        2,
        "media.rtp_port_start",
        "contains the SIP port proxy.udp_port (5060)",
    ),
    (
        "bad ami allow entry",
        "[ami]\nallows = [\"127.0.0.1\", \"localhost\"]\n",
        2,
        "ami.allows[1]",
        "is not an IP address or CIDR",
    ),
    (
        "memory user with a password and generate_password",
        "[[proxy.user_backends]]\ntype = \"memory\"\nusers = [\n  { username = \"1\", password = \"p\", generate_password = true },\n]\n",
        4,
        "proxy.user_backends[0].users[0].password",
        "set password or generate_password = true, not both",
    ),
    (
        "memory user with neither",
        "[[proxy.user_backends]]\ntype = \"memory\"\nusers = [\n  { username = \"1\" },\n]\n",
        4,
        "proxy.user_backends[0].users[0].password",
        "must not be empty (or set generate_password = true)",
    ),
    (
        "flow cap too small",
        "[callrecord]\nmax_flow_bytes = 100\n",
        2,
        "callrecord.max_flow_bytes",
        "must be 4096-16777216, not 100",
    ),
    (
        "drain timeout beyond a day",
        "[ami]\ndrain_timeout_secs = 9223372036854775807\n",
        2,
        "ami.drain_timeout_secs",
        "must be 0-86400, not 9223372036854775807",
    ),
    (
        "short ami token",
        "[ami]\ntoken = \"short\"\n",
        2,
        "ami.token",
        "must be at least 16 characters",
    ),
    (
        "ami token with a space",
        "[ami]\ntoken = \"0123456789 abcdef\"\n",
        2,
        "ami.token",
        "printable ASCII without spaces",
    ),
    (
        "no contacts per aor",
        "[proxy]\nmax_contacts_per_aor = 0\n",
        2,
        "proxy.max_contacts_per_aor",
        "must be 1-1000, not 0",
    ),
    // [store] growth, budget and retention.
    (
        "disk budget below the initial map",
        "[store]\nmap_size_mib = 2048\nmax_disk_mib = 1024\n",
        3,
        "store.max_disk_mib",
        "the disk budget (1024 MiB) is below the initial map size (store.map_size_mib = 2048 MiB)",
    ),
    (
        "zero disk budget",
        "[store]\nmap_size_mib = 1\nmax_disk_mib = 0\n",
        3,
        "store.max_disk_mib",
        "must be 1-16777216, not 0",
    ),
    (
        "negative cdr retention",
        "[store]\ncdr_retention_days = -1\n",
        2,
        "store.cdr_retention_days",
        "must be 0-36500 days (0 = keep), not -1",
    ),
    (
        "flow retention not a number",
        "[store]\nflow_retention_days = nan\n",
        2,
        "store.flow_retention_days",
        "must be 0-36500 days (0 = keep), not NaN",
    ),
    (
        "unknown store key",
        "[store]\nretention_days = 3\n",
        2,
        "store.retention_days",
        "unknown key",
    ),
];

#[test]
fn bad_configs_name_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (name, text, line, key, reason)) in BAD_CONFIGS.iter().enumerate() {
        let path = dir.path().join(format!("bad-{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let Err(err) = Config::load(&path) else {
            panic!("{name}: loaded, expected an error");
        };
        let msg = err.to_string();
        let prefix = format!("{}:{line}: {key}: ", path.display());
        assert!(
            msg.starts_with(&prefix),
            "{name}:\n  got      {msg}\n  expected {prefix}..."
        );
        assert!(
            msg.contains(reason),
            "{name}: reason should contain {reason:?}: {msg}"
        );
        assert!(!msg.contains('\n'), "{name}: not one line: {msg}");
        assert_eq!(err.line, Some(*line), "{name}");
        assert_eq!(err.key, *key, "{name}");
        println!("{name}: {msg}");
    }
}

#[test]
fn bad_perf_profiles_name_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, usize, &str, &str)] = &[
        (
            "unknown runtime key",
            "[runtime]\nshards = 2\nring_dept = 64\n",
            3,
            "runtime.ring_dept",
            "unknown key (did you mean `ring_depth`?)",
        ),
        (
            "table other than runtime",
            "[runtime]\nshards = 1\n\n[proxy]\nudp_port = 5070\n",
            4,
            "proxy",
            "unknown key",
        ),
        ("top-level key", "shards = 4\n", 1, "shards", "unknown key"),
        (
            "wrong type",
            "[runtime]\nspin_before_park_us = \"50us\"\n",
            2,
            "runtime.spin_before_park_us",
            "invalid type",
        ),
        (
            "bad value",
            "[runtime]\nshards = 4096\n",
            2,
            "runtime.shards",
            "must be at most 1024",
        ),
    ];
    for (i, (name, text, line, key, reason)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("profile-{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let mut cfg = shipped();
        let err = cfg.apply_profile(&path).unwrap_err();
        let msg = err.to_string();
        let prefix = format!("{}:{line}: {key}: ", path.display());
        assert!(
            msg.starts_with(&prefix),
            "{name}:\n  got      {msg}\n  expected {prefix}..."
        );
        assert!(msg.contains(reason), "{name}: {msg}");
    }
}

#[test]
fn syntax_errors_give_file_and_line() {
    let e = Config::parse("x.toml", "[proxy]\nudp_port = = 1\n").unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("x.toml:2: "), "{msg}");
    assert!(!msg.contains('\n'));
    let e = Config::parse("x.toml", "[proxy]\nudp_port = 1\nudp_port = 2\n").unwrap_err();
    assert!(e.to_string().starts_with("x.toml:3: "), "{e}");
}
