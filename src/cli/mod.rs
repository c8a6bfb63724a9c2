//! The CLI subcommands that do not run the server: config checks and store
//! inspection. They open the store read-only, so they work while it runs.

pub mod console;

use std::path::Path;
use std::process::ExitCode;

use shards::registrar::Binding;
use shards::store::{Store, StoreOptions};
use shards::time::Now;

use crate::config::{Config, ConfigError};

/// Loads the config (and profile) or prints the one-line error; exit 2.
pub fn load_config(path: &Path, perf: Option<&Path>) -> Result<Config, ExitCode> {
    Config::load_with_profile(path, perf).map_err(|e: ConfigError| {
        eprintln!("shardpbx: {e}");
        ExitCode::from(2)
    })
}

pub fn check_config(path: &Path, perf: Option<&Path>) -> ExitCode {
    match load_config(path, perf).and_then(|c| crate::app::check_routing_files(&c).map(|_| c)) {
        Ok(cfg) => {
            // A configured certificate is read and checked too (a
            // self-signed one is made only by `run`).
            let tls_on = cfg.proxy.tls_port != 0 || cfg.proxy.wss_port != 0;
            if tls_on && !cfg.proxy.tls_cert.as_os_str().is_empty() {
                if let Err(e) = crate::tls_files::load(&cfg) {
                    eprintln!("shardpbx: {e}");
                    return ExitCode::from(2);
                }
            }
            println!(
                "{}: ok ({} shard(s), SIP on {}:{} (UDP{}{}{}{}), HTTP on {})",
                path.display(),
                cfg.shard_count(),
                cfg.proxy.addr,
                cfg.proxy.udp_port,
                if cfg.proxy.tcp_port != 0 {
                    format!(", TCP {}", cfg.proxy.tcp_port)
                } else {
                    String::new()
                },
                if cfg.proxy.tls_port != 0 {
                    format!(", TLS {}", cfg.proxy.tls_port)
                } else {
                    String::new()
                },
                if cfg.proxy.ws_port != 0 {
                    format!(", WS {}", cfg.proxy.ws_port)
                } else {
                    String::new()
                },
                if cfg.proxy.wss_port != 0 {
                    format!(", WSS {}", cfg.proxy.wss_port)
                } else {
                    String::new()
                },
                cfg.http_addr
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

pub fn store_dir(cfg: &Config) -> std::path::PathBuf {
    cfg.data_dir().join("lmdb")
}

/// Opens the store of the config read-only.
fn open_store(path: &Path) -> Result<Store, ExitCode> {
    let cfg = load_config(path, None)?;
    let opts = StoreOptions {
        map_size: (cfg.store.map_size_mib as usize) << 20,
        read_only: true,
    };
    Store::open(&store_dir(&cfg), &opts).map_err(|e| {
        eprintln!("shardpbx: {e}");
        ExitCode::from(1)
    })
}

pub fn cdr_list(path: &Path, since: Option<&str>, limit: usize, json: bool) -> ExitCode {
    let since_ms = match since.map(shards::cdr::time_fmt::parse_time) {
        None => 0,
        Some(Some(ms)) => ms,
        Some(None) => {
            eprintln!(
                "shardpbx: --since: expected RFC 3339 (2026-11-23T10:00:00Z) or unix seconds"
            );
            return ExitCode::from(2);
        }
    };
    let store = match open_store(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let list = match store.cdrs_since(since_ms, limit) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("shardpbx: {e}");
            return ExitCode::from(1);
        }
    };
    if json {
        match serde_json::to_string_pretty(&list) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("shardpbx: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        println!(
            "{:<24} {:<36} {:<16} {:<16} {:<9} {:<10} {:>4} {:>6}  HANGUP",
            "START", "CALL-ID", "FROM", "TO", "DIRECTION", "STATUS", "CODE", "SECS"
        );
        for c in &list {
            println!(
                "{:<24} {:<36} {:<16} {:<16} {:<9} {:<10} {:>4} {:>6}  {}",
                c.start_time,
                c.call_id,
                c.from_number,
                c.to_number,
                c.direction,
                c.status,
                c.status_code,
                c.duration_secs,
                c.hangup_reason
            );
        }
        println!("{} record(s)", list.len());
    }
    ExitCode::SUCCESS
}

pub fn registrations_list(path: &Path, aor: Option<&str>, json: bool) -> ExitCode {
    let store = match open_store(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let all = match aor {
        Some(a) if a.contains(':') => store.bindings(a),
        _ => store.all_bindings(),
    };
    let mut list: Vec<Binding> = match all {
        Ok(l) => l,
        Err(e) => {
            eprintln!("shardpbx: {e}");
            return ExitCode::from(1);
        }
    };
    let now = Now::read().unix;
    list.retain(|b| {
        b.expires_at > now && aor.is_none_or(|a| a.contains(':') || aor_user(&b.aor) == a)
    });
    list.sort_by(|a, b| a.aor.cmp(&b.aor).then(a.uri.cmp(&b.uri)));
    if json {
        let items: Vec<serde_json::Value> = list
            .iter()
            .map(|b| {
                serde_json::json!({
                    "aor": b.aor,
                    "contact": b.contact,
                    "uri": b.uri,
                    "source": b.source,
                    "transport": b.transport,
                    "expires": b.remaining(now),
                    "expires_at": b.expires_at,
                    "user_agent": b.user_agent,
                    "q": b.q,
                    "instance": b.instance,
                    "reg_id": b.reg_id,
                    "path": b.path,
                    "call_id": b.call_id,
                })
            })
            .collect();
        match serde_json::to_string_pretty(&items) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("shardpbx: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        println!(
            "{:<32} {:<44} {:<22} {:<5} {:>7}  USER-AGENT",
            "AOR", "CONTACT", "SOURCE", "TRANS", "EXPIRES"
        );
        for b in &list {
            println!(
                "{:<32} {:<44} {:<22} {:<5} {:>7}  {}",
                b.aor,
                b.uri,
                b.source,
                b.transport,
                b.remaining(now),
                b.user_agent.as_deref().unwrap_or("-")
            );
        }
        println!("{} binding(s)", list.len());
    }
    ExitCode::SUCCESS
}

/// `1001` of `sip:1001@host`.
fn aor_user(aor: &str) -> &str {
    let rest = aor.split_once(':').map(|(_, r)| r).unwrap_or(aor);
    rest.split('@').next().unwrap_or(rest)
}
