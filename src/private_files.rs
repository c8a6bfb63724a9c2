//! What the appliance keeps private on disk: `data_dir` is made (or
//! tightened to) mode 0700, and memory users with `generate_password = true`
//! get a random password on first start, kept in
//! `data_dir/generated-passwords` (mode 0600) and reused on later starts, so
//! the sample extensions work without credentials anyone else knows.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::config::{Config, UserBackendType};

/// The file of generated passwords, under data_dir.
pub const PASSWORDS_FILE: &str = "generated-passwords";
/// Random bytes per generated password (base32: 26 characters).
const PASSWORD_BYTES: usize = 16;

/// Why `data_dir` or the passwords file could not be made private or read.
#[derive(Debug)]
pub enum PrivateFileError {
    /// A file system step on `path` failed.
    Io {
        step: Step,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The passwords file has a line that is not `<user>[@realm] <password>`.
    Malformed { path: PathBuf, bad: BadLine },
    /// The OS gave no randomness for a password.
    Random(getrandom::Error),
}

/// The file system step that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Create,
    Read,
    /// To this mode.
    Restrict(u32),
    Write,
}

/// A malformed line of the passwords file (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadLine(pub usize);

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: expected \"<user>[@realm] <password>\"", self.0)
    }
}

impl std::fmt::Display for PrivateFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrivateFileError::Io { step, path, source } => {
                let path = path.display();
                match step {
                    Step::Create => write!(f, "cannot create {path}: {source}"),
                    Step::Read => write!(f, "cannot read {path}: {source}"),
                    Step::Restrict(mode) => {
                        write!(f, "cannot restrict {path} to {mode:o}: {source}")
                    }
                    Step::Write => write!(f, "cannot write {path}: {source}"),
                }
            }
            PrivateFileError::Malformed { path, bad } => write!(f, "{}: {bad}", path.display()),
            PrivateFileError::Random(e) => write!(f, "cannot draw a password: {e}"),
        }
    }
}

impl std::error::Error for PrivateFileError {}

/// The error of `step` on `path`.
fn io(step: Step, path: &Path) -> impl FnOnce(std::io::Error) -> PrivateFileError + '_ {
    move |source| PrivateFileError::Io {
        step,
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `dir` (and missing parents) with mode 0700, or takes group and
/// other permissions away from an existing one. Some(old mode) when an
/// existing directory was tightened.
pub fn private_dir(dir: &Path) -> Result<Option<u32>, PrivateFileError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(Step::Create, dir))?;
    tighten(dir, 0o700)
}

/// Clears the group/other bits of `path` (to `mode`); Some(old mode) when it
/// had any.
fn tighten(path: &Path, mode: u32) -> Result<Option<u32>, PrivateFileError> {
    let meta = fs::metadata(path).map_err(io(Step::Read, path))?;
    let old = meta.permissions().mode() & 0o7777;
    if old & 0o077 == 0 {
        return Ok(None);
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(io(Step::Restrict(mode), path))?;
    Ok(Some(old))
}

/// The key of a memory user in the file: `username`, or `username@realm`.
fn key(username: &str, realm: Option<&str>) -> String {
    match realm {
        Some(r) => format!("{username}@{}", r.to_ascii_lowercase()),
        None => username.to_string(),
    }
}

/// Fills in the password of every memory user with `generate_password`:
/// from `data_dir/generated-passwords`, generating (and adding to the file)
/// those it lacks. Logs where the passwords are, never the passwords.
pub fn fill_generated_passwords(cfg: &mut Config) -> Result<(), PrivateFileError> {
    let wanted: Vec<String> = cfg
        .proxy
        .user_backends
        .iter()
        .filter(|b| b.kind == Some(UserBackendType::Memory))
        .flat_map(|b| b.users.iter().flatten())
        .filter(|u| u.generate_password)
        .map(|u| key(&u.username, u.realm.as_deref()))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let path = cfg.data_dir().join(PASSWORDS_FILE);
    let (passwords, added) = load_or_generate(&path, &wanted)?;
    for b in &mut cfg.proxy.user_backends {
        if b.kind != Some(UserBackendType::Memory) {
            continue;
        }
        for u in b.users.iter_mut().flatten() {
            if u.generate_password {
                let k = key(&u.username, u.realm.as_deref());
                u.password = passwords.get(&k).cloned().unwrap_or_default();
            }
        }
    }
    if !added.is_empty() {
        tracing::warn!(
            users = %added.join(", "),
            file = %path.display(),
            "generated SIP passwords for these users; read them from the file (mode 0600)"
        );
    }
    tracing::info!(
        users = %wanted.join(", "),
        file = %path.display(),
        "these users' SIP passwords are in the file (generate_password)"
    );
    Ok(())
}

/// The passwords in `path` (made private if it was not), with one generated
/// for each of `wanted` it lacks, written back; and the keys generated now.
fn load_or_generate(
    path: &Path,
    wanted: &[String],
) -> Result<(BTreeMap<String, String>, Vec<String>), PrivateFileError> {
    let mut passwords = BTreeMap::new();
    match fs::read_to_string(path) {
        Ok(text) => {
            if let Some(old) = tighten(path, 0o600)? {
                tracing::warn!(file = %path.display(), "was mode {old:o}; now 0600");
            }
            passwords = parse(&text).map_err(|bad| PrivateFileError::Malformed {
                path: path.to_path_buf(),
                bad,
            })?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(Step::Read, path)(e)),
    }
    let mut added = Vec::new();
    for k in wanted {
        if !passwords.contains_key(k) {
            passwords.insert(k.clone(), generate()?);
            added.push(k.clone());
        }
    }
    if !added.is_empty() {
        write_private(path, &render(&passwords))?;
    }
    Ok((passwords, added))
}

/// `key password` lines; `#` comments and blank lines skipped.
fn parse(text: &str) -> Result<BTreeMap<String, String>, BadLine> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(k), Some(p), None) => {
                out.insert(k.to_string(), p.to_string());
            }
            _ => return Err(BadLine(i + 1)),
        }
    }
    Ok(out)
}

fn render(passwords: &BTreeMap<String, String>) -> String {
    let mut text = String::from(
        "# SIP passwords ShardPBX generated for memory users with generate_password = true.\n\
         # <user>[@realm] <password>. Keep this file private (mode 0600); delete a line to\n\
         # get a new password for that user at the next start.\n",
    );
    for (k, p) in passwords {
        text.push_str(&format!("{k} {p}\n"));
    }
    text
}

/// A fresh random password: 128 bits from the OS, base32 (a-z, 2-7).
fn generate() -> Result<String, PrivateFileError> {
    let mut bytes = [0u8; PASSWORD_BYTES];
    getrandom::getrandom(&mut bytes).map_err(PrivateFileError::Random)?;
    Ok(base32(&bytes))
}

fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Writes `text` to `path` through a new mode-0600 file renamed over it.
fn write_private(path: &Path, text: &str) -> Result<(), PrivateFileError> {
    let tmp: PathBuf = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io(Step::Write, path)(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn base32_of_known_bytes() {
        assert_eq!(base32(b"foobar"), "mzxw6ytboi");
        assert_eq!(base32(&[0; 16]).len(), 26);
        let a = generate().unwrap();
        assert_eq!(a.len(), 26);
        assert_ne!(a, generate().unwrap());
    }

    #[test]
    fn passwords_are_made_once_kept_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("a/data");
        assert_eq!(private_dir(&data).unwrap(), None);
        assert_eq!(mode(&data), 0o700);
        let path = data.join(PASSWORDS_FILE);
        let want = vec!["1001".to_string(), "1002@pbx.example".to_string()];
        let (first, added) = load_or_generate(&path, &want).unwrap();
        assert_eq!(added, want);
        assert_eq!(mode(&path), 0o600);
        assert_ne!(first["1001"], first["1002@pbx.example"]);
        let (again, added) = load_or_generate(&path, &want).unwrap();
        assert!(added.is_empty());
        assert_eq!(again, first);
        // A file someone opened up is closed again; a new user is added.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let more = vec!["1001".to_string(), "1003".to_string()];
        let (third, added) = load_or_generate(&path, &more).unwrap();
        assert_eq!(added, vec!["1003".to_string()]);
        assert_eq!(third["1001"], first["1001"]);
        assert_eq!(third.len(), 3, "entries not wanted now are kept");
        assert_eq!(mode(&path), 0o600);
        // An opened-up data_dir is tightened.
        fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(private_dir(&data).unwrap(), Some(0o755));
        assert_eq!(mode(&data), 0o700);
    }

    #[test]
    fn a_malformed_file_is_an_error_naming_the_line() {
        assert_eq!(parse("# c\n\n1001 pw\n").unwrap()["1001"], "pw".to_string());
        assert_eq!(parse("1001\n").unwrap_err(), BadLine(1));
        assert_eq!(parse("# x\n1001 a b\n").unwrap_err(), BadLine(2));
        let e = PrivateFileError::Malformed {
            path: "/d/generated-passwords".into(),
            bad: BadLine(2),
        };
        assert_eq!(
            e.to_string(),
            "/d/generated-passwords: line 2: expected \"<user>[@realm] <password>\""
        );
    }
}
