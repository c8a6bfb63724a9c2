//! Where SIP users and their secrets come from. A [`UserDirectory`] chains
//! backends in config order; the first that knows a user answers. Backends
//! implement [`UserBackend`]: the in-memory one (`type = "memory"`) here; the
//! console's extensions and the HTTP backend implement the same trait.

use std::collections::HashMap;
use std::sync::Arc;

use crate::auth::Secret;

/// A user as a backend knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub username: String,
    pub credential: Credential,
    pub display_name: Option<String>,
    /// Callers who do not authenticate (and come from no trunk) may call
    /// this user; only this user, so no route or trunk is reachable that way.
    pub allow_guest_calls: bool,
}

/// The stored form of a user's secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    Password(String),
    /// hex MD5 of `user:realm:password`.
    Md5Ha1(String),
    /// hex MD5 and hex SHA-256 of `user:realm:password`, for one realm.
    Ha1 {
        md5: String,
        sha256: String,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::Password(_) => "Password(..)",
            Credential::Md5Ha1(_) => "Md5Ha1(..)",
            Credential::Ha1 { .. } => "Ha1(..)",
        })
    }
}

impl UserRecord {
    /// The secret in the form digest verification takes.
    pub fn secret(&self) -> Secret<'_> {
        match &self.credential {
            Credential::Password(p) => Secret::Password(p),
            Credential::Md5Ha1(h) => Secret::Md5Ha1(h),
            Credential::Ha1 { md5, sha256 } => Secret::Ha1 { md5, sha256 },
        }
    }
}

/// What a backend says about a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserLookup {
    Found(UserRecord),
    /// This backend does not know the user; the next one is asked.
    Unknown,
}

/// A source of users. Called on a shard: it must answer without blocking.
pub trait UserBackend: Send + Sync {
    fn lookup(&self, username: &str, realm: &str) -> UserLookup;
}

/// `type = "memory"`: users listed in the config file.
#[derive(Default)]
pub struct MemoryBackend {
    /// username -> (realm it is limited to, record)
    users: HashMap<String, (Option<String>, UserRecord)>,
}

impl MemoryBackend {
    /// `(username, password, realm limit)` triples; later duplicates win.
    pub fn new(users: impl IntoIterator<Item = (String, String, Option<String>)>) -> Self {
        let users = users
            .into_iter()
            .map(|(username, password, realm)| {
                let record = UserRecord {
                    username: username.clone(),
                    credential: Credential::Password(password),
                    display_name: None,
                    allow_guest_calls: false,
                };
                (username, (realm, record))
            })
            .collect();
        MemoryBackend { users }
    }
}

impl UserBackend for MemoryBackend {
    fn lookup(&self, username: &str, realm: &str) -> UserLookup {
        match self.users.get(username) {
            Some((limit, record))
                if limit
                    .as_deref()
                    .is_none_or(|r| r.eq_ignore_ascii_case(realm)) =>
            {
                UserLookup::Found(record.clone())
            }
            _ => UserLookup::Unknown,
        }
    }
}

/// The configured backends, asked in order.
#[derive(Clone, Default)]
pub struct UserDirectory {
    backends: Vec<Arc<dyn UserBackend>>,
}

impl UserDirectory {
    pub fn new(backends: Vec<Arc<dyn UserBackend>>) -> Self {
        UserDirectory { backends }
    }

    pub fn lookup(&self, username: &str, realm: &str) -> Option<UserRecord> {
        self.backends
            .iter()
            .find_map(|b| match b.lookup(username, realm) {
                UserLookup::Found(r) => Some(r),
                UserLookup::Unknown => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_backend_that_knows_wins_and_realm_limits_apply() {
        let a = MemoryBackend::new([("1001".into(), "a".into(), Some("pbx.test".into()))]);
        let b = MemoryBackend::new([
            ("1001".into(), "b".into(), None),
            ("1002".into(), "c".into(), None),
        ]);
        let dir = UserDirectory::new(vec![Arc::new(a), Arc::new(b)]);
        let pw = |u: &str, r: &str| dir.lookup(u, r).map(|r| r.credential);
        assert_eq!(
            pw("1001", "PBX.test"),
            Some(Credential::Password("a".into()))
        );
        assert_eq!(pw("1001", "other"), Some(Credential::Password("b".into())));
        assert_eq!(pw("1002", "x"), Some(Credential::Password("c".into())));
        assert_eq!(pw("9999", "x"), None);
    }
}
