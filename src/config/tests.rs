//! Tests against files: the shipped config, example trunks/routes and perf
//! profiles load; every schema key is documented in the shipped config; profiles
//! override only what they set; helpers and typed views. Error cases are in
//! `error_tests.rs`.

use std::path::{Path, PathBuf};

use super::*;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn shipped() -> Config {
    Config::load(repo("config/shardpbx.toml")).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn shipped_config_loads() {
    let cfg = shipped();
    assert_eq!(cfg.http_addr.to_string(), "127.0.0.1:8080");
    assert_eq!(cfg.data_dir, PathBuf::from("./data"));
    assert_eq!(cfg.proxy.realms, ["127.0.0.1", "localhost"]);
    assert_eq!(cfg.proxy.udp_port, 5060);
    assert_eq!(cfg.proxy.user_backends.len(), 1);
    match cfg.proxy.user_backends[0].backend() {
        UserBackend::Memory(users) => {
            let names: Vec<&str> = users.iter().map(|u| u.username.as_str()).collect();
            assert_eq!(names, ["1001", "1002"]);
            // No password anyone can read in the repository: made on first start.
            assert!(users
                .iter()
                .all(|u| u.password.is_empty() && u.generate_password));
        }
        other => panic!("expected a memory backend, got {other:?}"),
    }
    assert_eq!(cfg.callrecord.target(), CallRecordTarget::Local);
    assert!(cfg.proxy.acl().allows("192.0.2.1".parse().unwrap()));
    assert!(cfg.ami_allow_list().allows("127.0.0.1".parse().unwrap()));
    assert!(!cfg.ami_allow_list().allows("192.0.2.1".parse().unwrap()));
    assert_eq!(cfg.source_files(), [repo("config/shardpbx.toml").as_path()]);
}

/// Apart from the developer realms and users, the shipped file holds the defaults.
#[test]
fn shipped_config_values_are_the_defaults() {
    let mut cfg = shipped();
    cfg.proxy.realms.clear();
    cfg.proxy.user_backends.clear();
    // The shipped file turns TCP, TLS and WSS on; a config that does not
    // ask has none.
    assert_eq!(
        (cfg.proxy.tcp_port, cfg.proxy.tls_port, cfg.proxy.wss_port),
        (5060, 5061, 8443)
    );
    cfg.proxy.tcp_port = 0;
    cfg.proxy.tls_port = 0;
    cfg.proxy.wss_port = 0;
    let shipped = toml::Value::try_from(&cfg).unwrap();
    let defaults = toml::Value::try_from(Config::default()).unwrap();
    assert_eq!(shipped, defaults);
}

/// A config with every optional table and key filled in.
fn full_config() -> Config {
    let mut cfg = Config::default();
    let headers: Headers = [("X-API-Key".to_string(), "t".to_string())].into();
    cfg.proxy.user_backends = vec![UserBackendConfig {
        kind: Some(UserBackendType::Http),
        users: Some(vec![MemoryUser {
            username: "u".into(),
            password: "p".into(),
            generate_password: true,
            realm: Some("r".into()),
            display_name: Some("d".into()),
            allowed_caller_ids: Vec::new(),
        }]),
        url: Some("http://x".into()),
        username_field: Some("u".into()),
        realm_field: Some("r".into()),
        headers: Some(headers.clone()),
        password_is_ha1: Some(true),
        cache_ttl_secs: Some(1),
        negative_cache_ttl_secs: Some(1),
        timeout_ms: Some(1),
    }];
    cfg.proxy.http_router = Some(HttpRouterConfig {
        headers: headers.clone(),
        ..Default::default()
    });
    cfg.proxy.locator_webhook = Some(LocatorWebhookConfig {
        headers: headers.clone(),
        ..Default::default()
    });
    cfg.callrecord = CallRecordConfig {
        kind: CallRecordType::S3,
        url: Some("u".into()),
        with_media: Some(true),
        headers: Some(headers),
        bucket: Some("b".into()),
        region: Some("r".into()),
        endpoint: Some("e".into()),
        access_key: Some("a".into()),
        secret_key: Some("s".into()),
        root: Some("r".into()),
        timeout_ms: Some(1),
        keep_local: Some(true),
        retry_initial_ms: Some(1),
        retry_max_secs: Some(1),
        max_flow_bytes: 4096,
    };
    cfg
}

fn key_names(v: &toml::Value, out: &mut Vec<String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                out.push(k.clone());
                key_names(v, out);
            }
        }
        toml::Value::Array(a) => a.iter().for_each(|v| key_names(v, out)),
        _ => {}
    }
}

/// Every key of the schema appears in the shipped file (set or commented out).
#[test]
fn shipped_config_documents_every_key() {
    let text = std::fs::read_to_string(repo("config/shardpbx.toml")).unwrap();
    let mut names = Vec::new();
    key_names(&toml::Value::try_from(full_config()).unwrap(), &mut names);
    for name in names {
        if name == "X-API-Key" {
            continue;
        }
        let documented = text.contains(&format!("{name} ="))
            || text.contains(&format!("[{name}]"))
            || text.contains(&format!(".{name}]"))
            || text.contains(&format!("{{ {name} ="));
        assert!(documented, "key `{name}` is not in config/shardpbx.toml");
    }
}

#[test]
fn example_trunks_and_routes_are_empty_tables() {
    for f in ["config/trunks/example.toml", "config/routes/example.toml"] {
        let text = std::fs::read_to_string(repo(f)).unwrap();
        let t: toml::Table = toml::from_str(&text).unwrap();
        assert!(t.is_empty(), "{f} should be all comments");
        // Uncommented, it is valid TOML in the API.md format.
        let uncommented: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("# ").or(l.strip_prefix("#")))
            .filter(|l| l.starts_with('[') || l.contains(" = "))
            .map(|l| format!("{l}\n"))
            .collect();
        let t: toml::Table = toml::from_str(&uncommented).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(t.contains_key("trunks") || t.contains_key("routes"), "{f}");
    }
}

#[test]
fn perf_profiles_load_and_apply() {
    let base = shipped();

    let mut cfg = base.clone();
    cfg.apply_profile(repo("perf/default.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.runtime, RuntimeConfig::default());
    assert_eq!(cfg.source_files().len(), 2);

    let mut cfg = base.clone();
    cfg.apply_profile(repo("perf/many-core.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let rt = &cfg.runtime;
    assert_eq!(rt.shards, 0);
    assert_eq!(rt.spin_before_park_us, 50);
    assert_eq!(rt.ring_depth, 512);
    assert_eq!((rt.udp_recv_batch, rt.udp_send_batch), (64, 64));
    assert_eq!((rt.socket_rcvbuf, rt.socket_sndbuf), (8 << 20, 8 << 20));
    // Everything else is untouched.
    assert_eq!(cfg.proxy, base.proxy);

    // default.toml sets every [runtime] key, so it documents all of them.
    let text = std::fs::read_to_string(repo("perf/default.toml")).unwrap();
    let t: toml::Table = toml::from_str(&text).unwrap();
    let set: Vec<&String> = t["runtime"].as_table().unwrap().keys().collect();
    let all = toml::Table::try_from(RuntimeConfig::default()).unwrap();
    assert_eq!(set, all.keys().collect::<Vec<_>>());
}

#[test]
fn profile_overrides_only_the_keys_it_sets() {
    let mut cfg = Config::parse("c.toml", "[runtime]\nring_depth = 64\nudp_recv_batch = 8\n")
        .unwrap_or_else(|e| panic!("{e}"));
    cfg.apply_profile_str("p.toml", "[runtime]\nudp_recv_batch = 16\n")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.runtime.ring_depth, 64);
    assert_eq!(cfg.runtime.udp_recv_batch, 16);
    // An empty profile changes nothing.
    let before = cfg.runtime.clone();
    cfg.apply_profile_str("e.toml", "# nothing\n").unwrap();
    assert_eq!(cfg.runtime, before);
}

#[test]
fn failed_profile_leaves_config_unchanged() {
    let mut cfg = Config::default();
    let before = toml::Value::try_from(&cfg).unwrap();
    let e = cfg
        .apply_profile_str("p.toml", "[runtime]\nudp_recv_batch = 4\nring_depth = 0\n")
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "p.toml:3: runtime.ring_depth: must be 1-32768, not 0"
    );
    assert_eq!(toml::Value::try_from(&cfg).unwrap(), before);
    assert!(cfg.sources.is_empty());
}

#[test]
fn profile_errors_point_at_the_file_that_set_the_key() {
    // cpus in the config, a conflicting shard count in the profile.
    let mut cfg = Config::parse("c.toml", "[runtime]\ncpus = [0]\n").unwrap();
    let e = cfg
        .apply_profile_str("p.toml", "[runtime]\n\nshards = 2\n")
        .unwrap_err();
    assert_eq!(e.file, PathBuf::from("p.toml"));
    assert_eq!(e.line, Some(3));
    assert_eq!(e.key, "runtime.shards");
    assert_eq!(
        e.reason,
        "is 2 but runtime.cpus has 1 entry (one CPU per shard, or shards = 0)"
    );

    // A profile whose shard count starves the config's small RTP range: the key
    // set last (the profile's) is blamed.
    let mut cfg = Config::parse(
        "c.toml",
        "[media]\nrtp_port_start = 30000\nrtp_port_end = 30004\n[runtime]\nshards = 1\n",
    )
    .unwrap();
    let e = cfg
        .apply_profile_str("p.toml", "[runtime]\nshards = 4\n")
        .unwrap_err();
    assert_eq!(e.to_string().split(": ").next(), Some("p.toml:2"), "{e}");
    assert_eq!(e.key, "runtime.shards");
}

#[test]
fn good_variants_load() {
    let ok = [
        "",
        "[proxy]\nrealms = [\"pbx.example.com\", \"10.0.0.1\", \"[::1]\"]\nexternal_ip = \"203.0.113.5\"\n",
        "[proxy]\nacl_rules = []\n",
        "[proxy]\ndigest_algorithms = [\"SHA-256\"]\n",
        "[[proxy.user_backends]]\ntype = \"extensions\"\n",
        "[[proxy.user_backends]]\ntype = \"http\"\nurl = \"https://auth.example.com/pbx?x=1\"\nusername_field = \"u\"\nrealm_field = \"r\"\n[proxy.user_backends.headers]\nX-API-Key = \"t\"\n",
        "[proxy.http_router]\nurl = \"http://127.0.0.1:9000/route\"\n",
        "[proxy.locator_webhook]\nurl = \"http://127.0.0.1:9000/events\"\n",
        "[callrecord]\ntype = \"http\"\nurl = \"http://127.0.0.1:9000/cdr\"\n",
        "[callrecord]\ntype = \"s3\"\nbucket = \"cdr\"\nregion = \"us-east-1\"\nendpoint = \"http://127.0.0.1:9000\"\naccess_key = \"a\"\nsecret_key = \"s\"\n",
        "[runtime]\nshards = 1\ncpus = [0]\n",
        "[runtime]\ncpus = [0]\n",
        "[media]\nrtp_port_start = 10000\nrtp_port_end = 10002\n[runtime]\nshards = 1\n",
    ];
    for text in ok {
        if let Err(e) = Config::parse("ok.toml", text) {
            panic!("{text:?}: {e}");
        }
    }
}

#[test]
fn typed_views_apply_defaults() {
    let cfg = Config::parse(
        "v.toml",
        "[[proxy.user_backends]]\ntype = \"http\"\nurl = \"http://a/auth\"\n\
         [callrecord]\ntype = \"s3\"\nbucket = \"cdr\"\nregion = \"eu-west-1\"\nroot = \"/calls/\"\n",
    )
    .unwrap();
    match cfg.proxy.user_backends[0].backend() {
        UserBackend::Http(h) => {
            assert_eq!(h.username_field, "username");
            assert_eq!(h.realm_field, "realm");
            assert!(!h.password_is_ha1);
            assert_eq!(h.cache_ttl.as_secs(), 30);
            assert_eq!(h.negative_cache_ttl.as_secs(), 30, "as long as known users");
            assert_eq!(h.timeout.as_millis(), 5000);
        }
        other => panic!("{other:?}"),
    }
    match cfg.callrecord.target() {
        CallRecordTarget::S3(s) => {
            assert_eq!(s.root, "calls");
            assert_eq!(s.endpoint, None);
            assert_eq!(s.timeout.as_millis(), 30000);
        }
        other => panic!("{other:?}"),
    }
    let http = Config::parse(
        "h.toml",
        "[callrecord]\ntype = \"http\"\nurl = \"http://a/cdr\"\n",
    )
    .unwrap();
    match http.callrecord.target() {
        CallRecordTarget::Http(h) => assert!(h.with_media),
        other => panic!("{other:?}"),
    }
}

#[test]
fn shards_cpus_and_rtp_slices() {
    let cfg = Config::parse(
        "s.toml",
        "[runtime]\nshards = 3\n[media]\nrtp_port_start = 20000\nrtp_port_end = 20011\n",
    )
    .unwrap();
    assert_eq!(cfg.shard_count(), 3);
    assert_eq!(cfg.rtp_ports_per_shard(), 2);
    assert_eq!(cfg.rtp_ports_for_shard(0), 20000..20002);
    assert_eq!(cfg.rtp_ports_for_shard(2), 20004..20006);
    let cpus = available_cpus();
    assert_eq!(cfg.cpu_for_shard(0), cpus[0]);
    assert_eq!(cfg.cpu_for_shard(cpus.len()), cpus[0], "wraps around");

    let auto = Config::default();
    let n = std::thread::available_parallelism().unwrap().get();
    assert_eq!(auto.shard_count(), n);
    let per = auto.rtp_ports_per_shard();
    assert_eq!(per % 2, 0);
    for i in 0..n {
        let r = auto.rtp_ports_for_shard(i);
        assert_eq!(r.start % 2, 0);
        assert!(r.end <= 40000);
    }

    let pinned = Config::parse("p.toml", &format!("[runtime]\ncpus = [{}]\n", cpus[0])).unwrap();
    assert_eq!(pinned.shard_count(), 1);
    assert_eq!(pinned.cpu_for_shard(0), cpus[0]);
}

#[test]
fn paths_resolve() {
    let cwd = std::env::current_dir().unwrap();
    let cfg = Config::default();
    assert_eq!(cfg.data_dir(), cwd.join("data"));
    assert_eq!(cfg.recording_path(), cwd.join("data").join("recordings"));
    let abs = Config::parse(
        "a.toml",
        "data_dir = \"/srv/pbx\"\n[recording]\npath = \"/rec\"\n",
    )
    .unwrap();
    assert_eq!(abs.data_dir(), PathBuf::from("/srv/pbx"));
    assert_eq!(abs.recording_path(), PathBuf::from("/rec"));
    let rel = Config::parse("r.toml", "data_dir = \"/srv/pbx\"\n").unwrap();
    assert_eq!(rel.recording_path(), PathBuf::from("/srv/pbx/recordings"));
}

#[test]
fn realm_matching() {
    let cfg = Config::parse(
        "m.toml",
        "[proxy]\nrealms = [\"PBX.example.com\", \"::1\"]\nexternal_ip = \"203.0.113.5\"\n",
    )
    .unwrap();
    assert!(cfg.proxy.is_realm("pbx.example.com"));
    assert!(cfg.proxy.is_realm("pbx.example.com."));
    assert!(cfg.proxy.is_realm("[::1]"));
    assert!(cfg.proxy.is_realm("203.0.113.5"));
    assert!(!cfg.proxy.is_realm("other.example.com"));
}

#[test]
fn log_level_maps_to_tracing() {
    let cfg = Config::parse("l.toml", "log_level = \"debug\"\n").unwrap();
    assert_eq!(cfg.log_level.as_str(), "debug");
    assert_eq!(
        tracing::level_filters::LevelFilter::from(cfg.log_level),
        tracing::level_filters::LevelFilter::DEBUG
    );
}
