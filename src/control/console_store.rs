//! Console credentials in LMDB: console users (Argon2id password hashes) and
//! API tokens (SHA-256 of the secret, with scopes), in two named databases of
//! the process's store environment. The server only reads them; the CLI
//! (`shardpbx user ...`, `shardpbx token ...`) writes them, also while the
//! server runs (LMDB serializes writers across processes).

use heed::types::{Bytes, Str};
use heed::{CommitOrAbort, Database};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shards::store::{decode_record, encode_record, Store, StoreError};

const USERS_DB: &str = "console_users";
const TOKENS_DB: &str = "api_tokens";

/// What a token (or a session) may do under `/console`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// GET under /console.
    Read,
    /// POST/PUT/DELETE on console resources.
    Write,
    /// POST /console/calls/...: call commands and click-to-dial.
    Calls,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Calls];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Calls => "calls",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|sc| sc.as_str() == s)
    }
}

/// Why a list of scopes is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopesError {
    /// A value that is not a scope.
    Unknown(String),
    Empty,
}

impl std::fmt::Display for ScopesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScopesError::Unknown(part) => write!(
                f,
                "unknown scope '{part}' (expected a comma-separated list of read, write, calls)"
            ),
            ScopesError::Empty => f.write_str("at least one scope is needed (read, write, calls)"),
        }
    }
}

impl std::error::Error for ScopesError {}

/// `read,write` -> the scopes, in order, without repeats; the error names the
/// offending value.
pub fn parse_scopes(list: &str) -> Result<Vec<Scope>, ScopesError> {
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let scope = Scope::parse(part).ok_or_else(|| ScopesError::Unknown(part.to_string()))?;
        if !out.contains(&scope) {
            out.push(scope);
        }
    }
    if out.is_empty() {
        return Err(ScopesError::Empty);
    }
    Ok(out)
}

/// A console user as stored (key: username).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ConsoleUser {
    pub username: String,
    /// Argon2id PHC string (`$argon2id$v=19$...`), salt included.
    pub password_hash: String,
    /// RFC 3339 UTC.
    pub created: String,
}

/// An API token as stored (key: id). The secret itself is never stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    /// Hex SHA-256 of the secret part of the token.
    pub hash: String,
    /// RFC 3339 UTC.
    pub created: String,
}

/// The console databases in the store's environment.
#[derive(Clone)]
pub struct ConsoleStore {
    env: shards::store::GatedEnv,
    users: Database<'static, Str, Bytes>,
    tokens: Database<'static, Str, Bytes>,
}

impl ConsoleStore {
    /// Opens the two databases, creating them when missing (needs a store
    /// opened read-write).
    pub fn open(store: &Store) -> Result<ConsoleStore, StoreError> {
        let env = store.env();
        let wtxn = env.write_txn()?;
        let (users, tokens) = env
            .create_databases_and_commit(wtxn, |dbo, wtxn| {
                let u = dbo.create_database::<Str, Bytes>(wtxn, Some(USERS_DB))?;
                let t = dbo.create_database::<Str, Bytes>(wtxn, Some(TOKENS_DB))?;
                Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit((u, t)))
            })?
            .unwrap_commit();
        Ok(ConsoleStore { env, users, tokens })
    }

    pub fn user(&self, username: &str) -> Result<Option<ConsoleUser>, StoreError> {
        let rtxn = self.env.read_txn()?;
        match self.users.get(&rtxn, username)? {
            Some(raw) => Ok(Some(decode_record("console user", username, raw)?)),
            None => Ok(None),
        }
    }

    /// Adds a user; false (and nothing written) when the name is taken.
    pub fn add_user(&self, user: &ConsoleUser) -> Result<bool, StoreError> {
        let value = encode_record(user)?;
        let mut wtxn = self.env.write_txn()?;
        if self.users.get(&wtxn, &user.username)?.is_some() {
            return Ok(false);
        }
        self.users.put(&mut wtxn, &user.username, &value)?;
        wtxn.commit()?;
        Ok(true)
    }

    /// Replaces a user's password hash; false when there is no such user.
    pub fn set_password(&self, username: &str, password_hash: &str) -> Result<bool, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let Some(raw) = self.users.get(&wtxn, username)? else {
            return Ok(false);
        };
        let mut user: ConsoleUser = decode_record("console user", username, raw)?;
        user.password_hash = password_hash.to_string();
        let value = encode_record(&user)?;
        self.users.put(&mut wtxn, username, &value)?;
        wtxn.commit()?;
        Ok(true)
    }

    /// Removes a user; false when there was none.
    pub fn remove_user(&self, username: &str) -> Result<bool, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let removed = self.users.delete(&mut wtxn, username)?;
        wtxn.commit()?;
        Ok(removed)
    }

    pub fn token(&self, id: &str) -> Result<Option<ApiToken>, StoreError> {
        let rtxn = self.env.read_txn()?;
        match self.tokens.get(&rtxn, id)? {
            Some(raw) => Ok(Some(decode_record("api token", id, raw)?)),
            None => Ok(None),
        }
    }

    pub fn add_token(&self, token: &ApiToken) -> Result<(), StoreError> {
        let value = encode_record(token)?;
        let mut wtxn = self.env.write_txn()?;
        self.tokens.put(&mut wtxn, &token.id, &value)?;
        wtxn.commit()?;
        Ok(())
    }

    /// Every token, by id.
    pub fn tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.tokens.iter(&rtxn)? {
            let (id, raw) = item?;
            out.push(decode_record("api token", id, raw)?);
        }
        Ok(out)
    }

    /// Revokes (deletes) a token; false when there was none.
    pub fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let removed = self.tokens.delete(&mut wtxn, id)?;
        wtxn.commit()?;
        Ok(removed)
    }
}

/// Now, RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    shards::cdr::time_fmt::rfc3339_ms(ms)
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Why a secret (salt, token, session id) or a password hash could not be made.
#[derive(Debug)]
pub enum SecretError {
    /// The OS gave no randomness.
    Random(getrandom::Error),
    /// The salt could not be encoded.
    Salt(argon2::password_hash::Error),
    /// Argon2 refused to hash.
    Hash(argon2::password_hash::Error),
}

impl std::fmt::Display for SecretError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretError::Random(e) => write!(f, "no randomness from the OS: {e}"),
            SecretError::Salt(e) => write!(f, "salt: {e}"),
            SecretError::Hash(e) => write!(f, "argon2: {e}"),
        }
    }
}

impl std::error::Error for SecretError {}

/// `n` bytes from the OS CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], SecretError> {
    let mut buf = [0u8; N];
    getrandom::getrandom(&mut buf).map_err(SecretError::Random)?;
    Ok(buf)
}

/// Argon2id (the crate's defaults: 19 MiB, 2 passes, 1 lane) with a random
/// salt; the PHC string. Slow by design: keep it off async threads.
pub fn hash_password(password: &str) -> Result<String, SecretError> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt_bytes = random_bytes::<16>()?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(SecretError::Salt)?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(SecretError::Hash)
}

/// True when `password` matches the PHC string (false also for a string
/// that does not parse). Slow by design.
pub fn verify_password(phc: &str, password: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    match PasswordHash::new(phc) {
        Ok(parsed) => argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Token text prefix.
const TOKEN_PREFIX: &str = "spbx_";

/// A fresh token: the text to show once (`spbx_<id>_<secret hex>`) and the
/// record to store.
///
/// The secret is 32 random bytes, so a plain SHA-256 of it is enough: Argon2
/// (slow, salted) exists to make guessing low-entropy passwords expensive,
/// and nobody can guess 256 random bits; a fast hash also keeps the per
/// request check cheap.
pub fn mint_token(name: &str, scopes: Vec<Scope>) -> Result<(String, ApiToken), SecretError> {
    let id = hex(&random_bytes::<8>()?);
    let secret = hex(&random_bytes::<32>()?);
    let record = ApiToken {
        id: id.clone(),
        name: name.to_string(),
        scopes,
        hash: hex(&Sha256::digest(secret.as_bytes())),
        created: now_rfc3339(),
    };
    Ok((format!("{TOKEN_PREFIX}{id}_{secret}"), record))
}

/// `spbx_<id>_<secret>` -> (id, secret); None when it is not token-shaped.
pub fn split_token(text: &str) -> Option<(&str, &str)> {
    let (id, secret) = text.strip_prefix(TOKEN_PREFIX)?.split_once('_')?;
    let hexy = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hexy(id, 16) && hexy(secret, 64)).then_some((id, secret))
}

impl ApiToken {
    /// True when `secret` is this token's secret (constant-time compare of
    /// the hashes).
    pub fn verify(&self, secret: &str) -> bool {
        let got = hex(&Sha256::digest(secret.as_bytes()));
        constant_time_eq(got.as_bytes(), self.hash.as_bytes())
    }

    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// Equality whose time depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use shards::store::StoreOptions;

    #[test]
    fn scopes_parse_and_reject_unknown_ones() {
        assert_eq!(
            parse_scopes("read, calls,read").unwrap(),
            vec![Scope::Read, Scope::Calls]
        );
        let err = parse_scopes("read,admin").unwrap_err();
        assert_eq!(err, ScopesError::Unknown("admin".into()));
        assert!(err.to_string().contains("'admin'"), "{err}");
        assert_eq!(parse_scopes(" , "), Err(ScopesError::Empty));
    }

    #[test]
    fn token_round_trip_and_tamper() {
        let (text, rec) = mint_token("ci", vec![Scope::Read]).unwrap();
        assert!(!rec.hash.contains(&text[22..]), "secret must not be stored");
        let (id, secret) = split_token(&text).unwrap();
        assert_eq!(id, rec.id);
        assert!(rec.verify(secret));
        let mut wrong = secret.to_string();
        wrong.replace_range(0..1, if wrong.starts_with('0') { "1" } else { "0" });
        assert!(!rec.verify(&wrong));
        assert!(split_token("spbx_short_abc").is_none());
        assert!(split_token(&text.replace("spbx_", "xxxx_")).is_none());
    }

    #[test]
    fn passwords_hash_with_argon2id() {
        let phc = hash_password("s3cret").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify_password(&phc, "s3cret"));
        assert!(!verify_password(&phc, "s3cret "));
        assert!(!verify_password("not a phc string", "s3cret"));
    }

    #[test]
    fn users_and_tokens_persist() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path(),
            &StoreOptions {
                map_size: 16 << 20,
                read_only: false,
            },
        )
        .unwrap();
        let cs = ConsoleStore::open(&store).unwrap();
        let user = ConsoleUser {
            username: "admin".into(),
            password_hash: "h1".into(),
            created: now_rfc3339(),
        };
        assert!(cs.add_user(&user).unwrap());
        assert!(!cs.add_user(&user).unwrap(), "duplicate refused");
        assert!(cs.set_password("admin", "h2").unwrap());
        assert!(!cs.set_password("nobody", "h2").unwrap());
        assert_eq!(cs.user("admin").unwrap().unwrap().password_hash, "h2");
        let (_, tok) = mint_token("t", vec![Scope::Write]).unwrap();
        cs.add_token(&tok).unwrap();
        assert_eq!(cs.token(&tok.id).unwrap().as_ref(), Some(&tok));
        assert_eq!(cs.tokens().unwrap().len(), 1);
        assert!(cs.revoke_token(&tok.id).unwrap());
        assert!(!cs.revoke_token(&tok.id).unwrap());
        assert!(cs.token(&tok.id).unwrap().is_none());
        assert!(cs.remove_user("admin").unwrap());
        assert!(cs.user("admin").unwrap().is_none());
    }
}
