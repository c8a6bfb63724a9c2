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
    /// From users this user may call as besides its own username (a main
    /// number, a queue): anything else in From is refused (403).
    pub allowed_caller_ids: Vec<String>,
}

impl UserRecord {
    /// Whether this user, authenticated, may send `from_user` (decoded) as
    /// the caller.
    pub fn may_call_as(&self, from_user: &str) -> bool {
        from_user == self.username || self.allowed_caller_ids.iter().any(|id| id == from_user)
    }
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
                    allowed_caller_ids: Vec::new(),
                };
                (username, (realm, record))
            })
            .collect();
        MemoryBackend { users }
    }

    /// Full records, each with the realm it is limited to; later
    /// duplicates win.
    pub fn from_records(records: impl IntoIterator<Item = (UserRecord, Option<String>)>) -> Self {
        let users = records
            .into_iter()
            .map(|(record, realm)| (record.username.clone(), (realm, record)))
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

/// The answer of a remote (HTTP) backend, as the control core relays it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteAnswer {
    Found(UserRecord),
    /// The backend does not know the user; the next backend is asked.
    Unknown,
    /// The backend refuses the user: SIP 403 with this reason phrase.
    Forbidden(String),
    /// Timeout, connection error or an unusable answer: SIP 503, and not
    /// cached (the next request asks again).
    Unavailable,
}

/// Which remote answer: (backend index in config order, username, realm in
/// lower case).
pub type RemoteKey = (usize, String, String);

/// A question for a remote backend, sent to the control core; the answer
/// comes back to `shard` as `ShardMsg::UserAnswer`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserQuery {
    pub shard: usize,
    pub key: RemoteKey,
}

/// What the directory says about a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    Found(UserRecord),
    /// No backend knows the user.
    Unknown,
    Forbidden(String),
    Unavailable,
    /// A remote backend must be asked first (see [`UserQuery`]).
    Pending(RemoteKey),
}

/// One shard's remote answers, each until its time runs out.
#[derive(Default)]
pub struct RemoteCache {
    answers: HashMap<RemoteKey, (RemoteAnswer, u64)>,
}

impl RemoteCache {
    pub fn get(&self, key: &RemoteKey, now: u64) -> Option<&RemoteAnswer> {
        self.answers
            .get(key)
            .filter(|(_, until)| *until > now)
            .map(|(a, _)| a)
    }

    /// Keeps `answer` for `ttl_secs` (0: not at all); drops lapsed answers
    /// now and then so the map stays as large as the live ones.
    pub fn put(&mut self, key: RemoteKey, answer: RemoteAnswer, ttl_secs: u64, now: u64) {
        if self.answers.len() >= 1024 && self.answers.len().is_power_of_two() {
            self.answers.retain(|_, (_, until)| *until > now);
        }
        if ttl_secs > 0 {
            self.answers.insert(key, (answer, now + ttl_secs));
        }
    }
}

/// One configured backend: answered on the shard, or asked remotely.
#[derive(Clone)]
enum Source {
    Local(Arc<dyn UserBackend>),
    /// An HTTP backend: answered through [`RemoteCache`] and the control core.
    Remote(usize),
}

/// The configured backends, asked in order.
#[derive(Clone, Default)]
pub struct UserDirectory {
    sources: Vec<Source>,
}

impl UserDirectory {
    pub fn new(backends: Vec<Arc<dyn UserBackend>>) -> Self {
        UserDirectory {
            sources: backends.into_iter().map(Source::Local).collect(),
        }
    }

    /// Adds a backend answered on the shard after those there are.
    pub fn push_local(&mut self, backend: Arc<dyn UserBackend>) {
        self.sources.push(Source::Local(backend));
    }

    /// Adds a remote backend (index `backend`) after those there are.
    pub fn push_remote(&mut self, backend: usize) {
        self.sources.push(Source::Remote(backend));
    }

    /// The first backend that knows `username` in `realm` answers; a remote
    /// backend without an answer in `cache` makes it [`Lookup::Pending`].
    pub fn resolve(&self, username: &str, realm: &str, cache: &RemoteCache, now: u64) -> Lookup {
        for source in &self.sources {
            match source {
                Source::Local(b) => {
                    if let UserLookup::Found(r) = b.lookup(username, realm) {
                        return Lookup::Found(r);
                    }
                }
                Source::Remote(i) => {
                    let key = (*i, username.to_string(), realm.to_ascii_lowercase());
                    match cache.get(&key, now) {
                        Some(RemoteAnswer::Found(r)) => return Lookup::Found(r.clone()),
                        Some(RemoteAnswer::Unknown) => {}
                        Some(RemoteAnswer::Forbidden(m)) => return Lookup::Forbidden(m.clone()),
                        Some(RemoteAnswer::Unavailable) => return Lookup::Unavailable,
                        None => return Lookup::Pending(key),
                    }
                }
            }
        }
        Lookup::Unknown
    }

    /// What the backends know without asking anyone: remote backends count
    /// with their cached answers only.
    pub fn lookup(
        &self,
        username: &str,
        realm: &str,
        cache: &RemoteCache,
        now: u64,
    ) -> Option<UserRecord> {
        self.sources.iter().find_map(|source| match source {
            Source::Local(b) => match b.lookup(username, realm) {
                UserLookup::Found(r) => Some(r),
                UserLookup::Unknown => None,
            },
            Source::Remote(i) => {
                let key = (*i, username.to_string(), realm.to_ascii_lowercase());
                match cache.get(&key, now) {
                    Some(RemoteAnswer::Found(r)) => Some(r.clone()),
                    _ => None,
                }
            }
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
        let cache = RemoteCache::default();
        let pw = |u: &str, r: &str| dir.lookup(u, r, &cache, 0).map(|r| r.credential);
        assert_eq!(
            pw("1001", "PBX.test"),
            Some(Credential::Password("a".into()))
        );
        assert_eq!(pw("1001", "other"), Some(Credential::Password("b".into())));
        assert_eq!(pw("1002", "x"), Some(Credential::Password("c".into())));
        assert_eq!(pw("9999", "x"), None);
    }

    fn record(name: &str) -> UserRecord {
        UserRecord {
            username: name.into(),
            credential: Credential::Password("p".into()),
            display_name: None,
            allow_guest_calls: false,
            allowed_caller_ids: Vec::new(),
        }
    }

    #[test]
    fn a_remote_backend_answers_from_the_cache_or_asks() {
        let local = MemoryBackend::new([("1001".into(), "a".into(), None)]);
        let mut dir = UserDirectory::new(vec![Arc::new(local)]);
        dir.push_remote(1);
        let mut cache = RemoteCache::default();
        // Local users never wait for the remote backend.
        assert!(matches!(
            dir.resolve("1001", "R", &cache, 100),
            Lookup::Found(_)
        ));
        let key = (1, "2001".to_string(), "r".to_string());
        assert_eq!(
            dir.resolve("2001", "R", &cache, 100),
            Lookup::Pending(key.clone())
        );
        assert_eq!(dir.lookup("2001", "R", &cache, 100), None);
        cache.put(key.clone(), RemoteAnswer::Found(record("2001")), 30, 100);
        assert_eq!(
            dir.resolve("2001", "r", &cache, 129),
            Lookup::Found(record("2001"))
        );
        assert_eq!(dir.lookup("2001", "R", &cache, 129), Some(record("2001")));
        // The answer lapses after its time to live.
        assert_eq!(
            dir.resolve("2001", "R", &cache, 130),
            Lookup::Pending(key.clone())
        );
        cache.put(
            key.clone(),
            RemoteAnswer::Forbidden("Account locked".into()),
            30,
            130,
        );
        assert_eq!(
            dir.resolve("2001", "R", &cache, 131),
            Lookup::Forbidden("Account locked".into())
        );
        cache.put(key.clone(), RemoteAnswer::Unknown, 5, 140);
        assert_eq!(dir.resolve("2001", "R", &cache, 141), Lookup::Unknown);
        // Not cached at all: asked again.
        cache.put(key.clone(), RemoteAnswer::Unavailable, 0, 150);
        assert_eq!(dir.resolve("2001", "R", &cache, 151), Lookup::Pending(key));
    }
}
