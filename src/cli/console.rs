//! `shardpbx user ...` and `shardpbx token ...`: console users and API tokens
//! in the store. They open the store read-write (LMDB lets them write beside
//! a running server), so they work whether the server runs or not. Every
//! failure is one line on stderr and exit 2.

use std::path::Path;
use std::process::ExitCode;

use shards::store::{Store, StoreOptions};

use super::{load_config, store_dir};
use crate::control::console_store::{self, ConsoleStore, ConsoleUser};

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("shardpbx: {msg}");
    ExitCode::from(2)
}

/// The store of the config, read-write, and its console databases.
fn open(path: &Path) -> Result<(Store, ConsoleStore), ExitCode> {
    let cfg = load_config(path, None)?;
    let opts = StoreOptions {
        map_size: (cfg.store.map_size_mib as usize) << 20,
        read_only: false,
    };
    let store = Store::open(&store_dir(&cfg), &opts).map_err(fail)?;
    let console = ConsoleStore::open(&store).map_err(fail)?;
    Ok((store, console))
}

/// The environment runs with NO_SYNC: make a CLI change durable before exit.
fn synced(store: &Store, ok: String) -> ExitCode {
    match store.sync() {
        Ok(()) => {
            println!("{ok}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// A name that works as a key and on one output line.
fn check_name(flag: &str, value: &str) -> Result<(), ExitCode> {
    if value.is_empty() || value.len() > 128 {
        return Err(fail(format!("{flag}: 1 to 128 bytes expected")));
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(fail(format!(
            "{flag}: no spaces or control characters allowed"
        )));
    }
    Ok(())
}

/// `--password -` reads the password from the first line of stdin (keeps
/// it out of the process list and shell history).
fn password(value: &str) -> Result<String, ExitCode> {
    let pw = if value == "-" {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| fail(format!("--password: cannot read stdin: {e}")))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        value.to_string()
    };
    if pw.is_empty() {
        return Err(fail("--password: must not be empty"));
    }
    Ok(pw)
}

pub fn user_add(path: &Path, username: &str, pw: &str) -> ExitCode {
    let run = || -> Result<ExitCode, ExitCode> {
        check_name("--username", username)?;
        let pw = password(pw)?;
        let (store, console) = open(path)?;
        let user = ConsoleUser {
            username: username.to_string(),
            password_hash: console_store::hash_password(&pw).map_err(fail)?,
            created: console_store::now_rfc3339(),
        };
        if !console.add_user(&user).map_err(fail)? {
            return Err(fail(format!(
                "--username: user '{username}' exists (use `shardpbx user passwd`)"
            )));
        }
        Ok(synced(&store, format!("user '{username}' added")))
    };
    run().unwrap_or_else(|code| code)
}

pub fn user_passwd(path: &Path, username: &str, pw: &str) -> ExitCode {
    let run = || -> Result<ExitCode, ExitCode> {
        let pw = password(pw)?;
        let (store, console) = open(path)?;
        let hash = console_store::hash_password(&pw).map_err(fail)?;
        if !console.set_password(username, &hash).map_err(fail)? {
            return Err(fail(format!("--username: no user '{username}'")));
        }
        Ok(synced(
            &store,
            format!("password of '{username}' changed (its sessions ended)"),
        ))
    };
    run().unwrap_or_else(|code| code)
}

pub fn user_remove(path: &Path, username: &str) -> ExitCode {
    let run = || -> Result<ExitCode, ExitCode> {
        let (store, console) = open(path)?;
        if !console.remove_user(username).map_err(fail)? {
            return Err(fail(format!("--username: no user '{username}'")));
        }
        Ok(synced(&store, format!("user '{username}' removed")))
    };
    run().unwrap_or_else(|code| code)
}

/// Prints what was made, then the token alone on the last line: the only
/// time it is shown.
pub fn token_create(path: &Path, name: &str, scopes: &str) -> ExitCode {
    let run = || -> Result<ExitCode, ExitCode> {
        check_name("--name", name)?;
        let scopes =
            console_store::parse_scopes(scopes).map_err(|e| fail(format!("--scopes: {e}")))?;
        let (store, console) = open(path)?;
        let (text, record) = console_store::mint_token(name, scopes).map_err(fail)?;
        console.add_token(&record).map_err(fail)?;
        if let Err(e) = store.sync() {
            return Err(fail(e));
        }
        let scopes: Vec<&str> = record.scopes.iter().map(|s| s.as_str()).collect();
        println!(
            "token '{}' created: id {}, scopes {}. It is shown once; store it now:",
            record.name,
            record.id,
            scopes.join(",")
        );
        println!("{text}");
        Ok(ExitCode::SUCCESS)
    };
    run().unwrap_or_else(|code| code)
}

/// Id, name, scopes, created; never a secret (only its hash is stored, and
/// not printed either).
pub fn token_list(path: &Path, json: bool) -> ExitCode {
    let run = || -> Result<ExitCode, ExitCode> {
        let (_store, console) = open(path)?;
        let list = console.tokens().map_err(fail)?;
        if json {
            let items: Vec<serde_json::Value> = list
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "id": t.id, "name": t.name, "scopes": t.scopes, "created": t.created,
                    })
                })
                .collect();
            let text = serde_json::to_string_pretty(&items).map_err(fail)?;
            println!("{text}");
        } else {
            println!("{:<16}  {:<24}  {:<16}  CREATED", "ID", "NAME", "SCOPES");
            for t in &list {
                let scopes: Vec<&str> = t.scopes.iter().map(|s| s.as_str()).collect();
                println!(
                    "{:<16}  {:<24}  {:<16}  {}",
                    t.id,
                    t.name,
                    scopes.join(","),
                    t.created
                );
            }
            println!("{} token(s)", list.len());
        }
        Ok(ExitCode::SUCCESS)
    };
    run().unwrap_or_else(|code| code)
}

pub fn token_revoke(path: &Path, id: &str) -> ExitCode {
    let run = || -> Result<ExitCode, ExitCode> {
        let (store, console) = open(path)?;
        if !console.revoke_token(id).map_err(fail)? {
            return Err(fail(format!("--id: no token '{id}'")));
        }
        Ok(synced(&store, format!("token {id} revoked")))
    };
    run().unwrap_or_else(|code| code)
}
