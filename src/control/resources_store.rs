//! Console-managed resources in LMDB (API.md section 4, "Resources"):
//! extensions (`extensions`, keyed by username so a shard finds a user with
//! one lookup), SIP trunks (`console_trunks`) and routes (`console_routes`),
//! both keyed by id, and the id counters (`console_ids`). Also the user
//! backend that lets the shards read the extensions.
//!
//! The control core writes (from tokio's blocking pool); LMDB serializes
//! writers, so these writes may interleave with the store writer's batches.
//! Ids are decimal strings from a per-kind counter, never reused.
//!
//! Extension passwords are not kept: when one is set, the store keeps the
//! digest HA1s (MD5 and SHA-256 of `user:realm:password`) for every realm in
//! `[proxy] realms`, which is all digest verification needs. So a realm
//! added to the config later has no HA1 until the password is set again, and
//! renaming an extension needs its password (the HA1s hash the name). With
//! no realm configured the realm is whatever host a request names, so the
//! password itself has to be kept; that is the one case it is. A store
//! written before HA1s had plain passwords: they are converted at start. The
//! REST API never returns any of it.

use std::collections::BTreeMap;

use heed::types::{Bytes, Str};
use heed::{CommitOrAbort, Database, RwTxn};
use serde::{Deserialize, Serialize};
use shards::routing::{RouteSpec, TrunkSpec};
use shards::store::{decode_record, encode_record, Store, StoreError};
use shards::users::{Credential, UserBackend, UserLookup, UserRecord};

const EXTENSIONS_DB: &str = "extensions";
const TRUNKS_DB: &str = "console_trunks";
const ROUTES_DB: &str = "console_routes";
const IDS_DB: &str = "console_ids";

/// An extension (a SIP user) as stored; key: `username`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    pub id: String,
    pub username: String,
    /// A password being set (REST input), or kept in plain text only when no
    /// realm is configured (see the module comment). Never returned.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    /// Realm -> digest HA1s of the password. Never returned.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ha1: BTreeMap<String, RealmHa1>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    pub enabled: bool,
    pub allow_guest_calls: bool,
    /// From users this extension may call as besides its own number.
    #[serde(default)]
    pub allowed_caller_ids: Vec<String>,
}

/// The digest HA1s of an extension's password in one realm (hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealmHa1 {
    pub md5: String,
    pub sha256: String,
}

impl RealmHa1 {
    fn of(username: &str, realm: &str, password: &str) -> RealmHa1 {
        use sha2::Digest as _;
        let input = format!("{username}:{realm}:{password}");
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        RealmHa1 {
            md5: hex(&md5_digest(input.as_bytes())),
            sha256: hex(&sha2::Sha256::digest(input.as_bytes())),
        }
    }
}

fn md5_digest(data: &[u8]) -> Vec<u8> {
    use md5::Digest as _;
    md5::Md5::digest(data).to_vec()
}

/// A console trunk as stored; key: `id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTrunk {
    pub id: String,
    pub name: String,
    pub spec: TrunkSpec,
}

/// A console route as stored; key: `id`. Its name is `spec.name`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRoute {
    pub id: String,
    pub spec: RouteSpec,
}

/// What a replace of an extension found.
#[derive(Debug, PartialEq, Eq)]
pub enum Replaced {
    Done(Extension),
    /// No extension has that id.
    Missing,
    /// Another extension has the new username.
    Taken,
    /// The username changes but no password came (the HA1s hash the name).
    NeedsPassword,
}

/// The resource databases in the store's environment.
#[derive(Clone)]
pub struct ResourcesStore {
    env: shards::store::GatedEnv,
    extensions: Database<'static, Str, Bytes>,
    trunks: Database<'static, Str, Bytes>,
    routes: Database<'static, Str, Bytes>,
    ids: Database<'static, Str, Bytes>,
    /// `[proxy] realms`: the realms an extension's HA1s are made for.
    realms: std::sync::Arc<Vec<String>>,
}

/// Ids in creation order (numeric; other keys last, by text).
fn by_id<T>(items: &mut [T], id: impl Fn(&T) -> &str) {
    items.sort_by(|a, b| {
        let (a, b) = (id(a), id(b));
        match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            (Ok(_), Err(_)) => std::cmp::Ordering::Less,
            (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
            (Err(_), Err(_)) => a.cmp(b),
        }
    });
}

impl ResourcesStore {
    /// Opens the databases, creating them when missing (needs a store opened
    /// read-write). `realms` are `[proxy] realms`; extensions that still have
    /// a plain password get their HA1s for them here.
    pub fn open(store: &Store, realms: &[String]) -> Result<ResourcesStore, StoreError> {
        let env = store.env();
        let wtxn = env.write_txn()?;
        let (extensions, trunks, routes, ids) = env
            .create_databases_and_commit(wtxn, |dbo, wtxn| {
                let e = dbo.create_database::<Str, Bytes>(wtxn, Some(EXTENSIONS_DB))?;
                let t = dbo.create_database::<Str, Bytes>(wtxn, Some(TRUNKS_DB))?;
                let r = dbo.create_database::<Str, Bytes>(wtxn, Some(ROUTES_DB))?;
                let i = dbo.create_database::<Str, Bytes>(wtxn, Some(IDS_DB))?;
                Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit((e, t, r, i)))
            })?
            .unwrap_commit();
        let rs = ResourcesStore {
            env,
            extensions,
            trunks,
            routes,
            ids,
            realms: std::sync::Arc::new(realms.to_vec()),
        };
        rs.seal_plain_passwords()?;
        Ok(rs)
    }

    /// Replaces a password being set with its HA1s for every realm (see
    /// the module comment); without realms the password stays.
    fn seal(&self, ext: &mut Extension) {
        if ext.password.is_empty() || self.realms.is_empty() {
            return;
        }
        ext.ha1 = self
            .realms
            .iter()
            .map(|realm| {
                (
                    realm.clone(),
                    RealmHa1::of(&ext.username, realm, &ext.password),
                )
            })
            .collect();
        ext.password.clear();
    }

    /// Converts extensions stored with a plain password (older stores).
    fn seal_plain_passwords(&self) -> Result<(), StoreError> {
        if self.realms.is_empty() {
            return Ok(());
        }
        let mut wtxn = self.env.write_txn()?;
        let mut plain = Vec::new();
        for item in self.extensions.iter(&wtxn)? {
            let (key, raw) = item?;
            let ext: Extension = decode_record("extension", key, raw)?;
            if !ext.password.is_empty() {
                plain.push(ext);
            }
        }
        for mut ext in plain {
            self.seal(&mut ext);
            self.extensions
                .put(&mut wtxn, &ext.username, &encode_record(&ext)?)?;
            tracing::info!(username = %ext.username, "extension password replaced by its digest HA1s");
        }
        wtxn.commit()?;
        Ok(())
    }

    /// The next id of `kind`, counted in `wtxn`.
    fn next_id(&self, wtxn: &mut RwTxn<'_>, kind: &str) -> Result<String, StoreError> {
        let last = match self.ids.get(wtxn, kind)? {
            Some(raw) => <[u8; 8]>::try_from(raw)
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError(format!("store: id counter {kind} is corrupt")))?,
            None => 0,
        };
        let next = last + 1;
        self.ids.put(wtxn, kind, &next.to_be_bytes())?;
        Ok(next.to_string())
    }

    /// The user backend the shards read extensions through.
    pub fn backend(&self) -> ExtensionsBackend {
        ExtensionsBackend {
            env: self.env,
            extensions: self.extensions,
        }
    }

    // ---- extensions ----

    /// Every extension, by username.
    pub fn extensions(&self) -> Result<Vec<Extension>, StoreError> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.extensions.iter(&rtxn)? {
            let (key, raw) = item?;
            out.push(decode_record("extension", key, raw)?);
        }
        Ok(out)
    }

    pub fn extension(&self, id: &str) -> Result<Option<Extension>, StoreError> {
        Ok(self.extensions()?.into_iter().find(|e| e.id == id))
    }

    /// The extension with `id` as seen in `txn`.
    fn find_extension(
        &self,
        txn: &heed::RoTxn<'_>,
        id: &str,
    ) -> Result<Option<Extension>, StoreError> {
        for item in self.extensions.iter(txn)? {
            let (key, raw) = item?;
            let e: Extension = decode_record("extension", key, raw)?;
            if e.id == id {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    /// Adds `ext` under a new id (its `id` is ignored); None (nothing
    /// written) when the username is taken.
    pub fn add_extension(&self, ext: Extension) -> Result<Option<Extension>, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        if self.extensions.get(&wtxn, &ext.username)?.is_some() {
            return Ok(None);
        }
        let mut ext = Extension {
            id: self.next_id(&mut wtxn, "extensions")?,
            ..ext
        };
        self.seal(&mut ext);
        self.extensions
            .put(&mut wtxn, &ext.username, &encode_record(&ext)?)?;
        wtxn.commit()?;
        Ok(Some(ext))
    }

    /// Replaces the extension `id` with `ext` (its `id` is ignored); with
    /// `password` None the stored password stays.
    pub fn replace_extension(
        &self,
        id: &str,
        ext: Extension,
        password: Option<String>,
    ) -> Result<Replaced, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let Some(old) = self.find_extension(&wtxn, id)? else {
            return Ok(Replaced::Missing);
        };
        if ext.username != old.username {
            if self.extensions.get(&wtxn, &ext.username)?.is_some() {
                return Ok(Replaced::Taken);
            }
            if password.is_none() && old.password.is_empty() {
                return Ok(Replaced::NeedsPassword);
            }
            self.extensions.delete(&mut wtxn, &old.username)?;
        }
        let mut ext = match password {
            Some(password) => Extension {
                id: old.id,
                password,
                ..ext
            },
            None => Extension {
                id: old.id,
                password: old.password,
                ha1: old.ha1,
                ..ext
            },
        };
        self.seal(&mut ext);
        self.extensions
            .put(&mut wtxn, &ext.username, &encode_record(&ext)?)?;
        wtxn.commit()?;
        Ok(Replaced::Done(ext))
    }

    /// Removes the extension `id`; false when there is none.
    pub fn remove_extension(&self, id: &str) -> Result<bool, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let Some(old) = self.find_extension(&wtxn, id)? else {
            return Ok(false);
        };
        self.extensions.delete(&mut wtxn, &old.username)?;
        wtxn.commit()?;
        Ok(true)
    }

    // ---- trunks and routes ----

    /// Every console trunk, in creation order.
    pub fn trunks(&self) -> Result<Vec<StoredTrunk>, StoreError> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.trunks.iter(&rtxn)? {
            let (key, raw) = item?;
            out.push(decode_record::<StoredTrunk>("trunk", key, raw)?);
        }
        by_id(&mut out, |t| &t.id);
        Ok(out)
    }

    /// Every console route, in creation order.
    pub fn routes(&self) -> Result<Vec<StoredRoute>, StoreError> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.routes.iter(&rtxn)? {
            let (key, raw) = item?;
            out.push(decode_record::<StoredRoute>("route", key, raw)?);
        }
        by_id(&mut out, |r| &r.id);
        Ok(out)
    }

    /// Writes a trunk under `id`, or under a new id when `id` is None.
    pub fn put_trunk(
        &self,
        id: Option<&str>,
        name: String,
        spec: TrunkSpec,
    ) -> Result<StoredTrunk, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let id = match id {
            Some(id) => id.to_string(),
            None => self.next_id(&mut wtxn, "trunks")?,
        };
        let trunk = StoredTrunk { id, name, spec };
        self.trunks
            .put(&mut wtxn, &trunk.id, &encode_record(&trunk)?)?;
        wtxn.commit()?;
        Ok(trunk)
    }

    /// Writes a route under `id`, or under a new id when `id` is None.
    pub fn put_route(&self, id: Option<&str>, spec: RouteSpec) -> Result<StoredRoute, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let id = match id {
            Some(id) => id.to_string(),
            None => self.next_id(&mut wtxn, "routes")?,
        };
        let route = StoredRoute { id, spec };
        self.routes
            .put(&mut wtxn, &route.id, &encode_record(&route)?)?;
        wtxn.commit()?;
        Ok(route)
    }

    /// Removes a trunk; false when there was none.
    pub fn delete_trunk(&self, id: &str) -> Result<bool, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let removed = self.trunks.delete(&mut wtxn, id)?;
        wtxn.commit()?;
        Ok(removed)
    }

    /// Removes a route; false when there was none.
    pub fn delete_route(&self, id: &str) -> Result<bool, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let removed = self.routes.delete(&mut wtxn, id)?;
        wtxn.commit()?;
        Ok(removed)
    }
}

/// The console's extensions as a user source: one LMDB read transaction per
/// lookup (a memory-mapped read, as the registrar's binding lookups on the
/// shard), so a change is seen by the next REGISTER or INVITE. A disabled
/// extension is unknown here, and so is one without an HA1 for the realm
/// asked about.
pub struct ExtensionsBackend {
    env: shards::store::GatedEnv,
    extensions: Database<'static, Str, Bytes>,
}

impl UserBackend for ExtensionsBackend {
    fn lookup(&self, username: &str, realm: &str) -> UserLookup {
        let found = self.env.read_txn().and_then(|rtxn| {
            Ok(self
                .extensions
                .get(&rtxn, username)?
                .map(serde_json::from_slice::<Extension>))
        });
        match found {
            Ok(Some(Ok(ext))) if ext.enabled => {
                let credential = match ext.ha1.get(realm) {
                    Some(h) => Credential::Ha1 {
                        md5: h.md5.clone(),
                        sha256: h.sha256.clone(),
                    },
                    None if !ext.password.is_empty() => Credential::Password(ext.password),
                    // No HA1 for this realm (added to the config after the
                    // password was set): the user cannot be verified here.
                    None => return UserLookup::Unknown,
                };
                UserLookup::Found(UserRecord {
                    username: ext.username,
                    credential,
                    display_name: ext.display_name,
                    allow_guest_calls: ext.allow_guest_calls,
                    allowed_caller_ids: ext.allowed_caller_ids,
                })
            }
            Ok(Some(Ok(_)) | None) => UserLookup::Unknown,
            Ok(Some(Err(e))) => {
                tracing::warn!(username, "extension unreadable: {e}");
                UserLookup::Unknown
            }
            Err(e) => {
                tracing::warn!(username, "extension lookup failed: {e}");
                UserLookup::Unknown
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shards::routing::ActionKind;
    use shards::store::StoreOptions;

    fn open() -> (tempfile::TempDir, ResourcesStore) {
        let (dir, store) = store();
        let rs = ResourcesStore::open(&store, &["pbx.test".into()]).unwrap();
        (dir, rs)
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path(),
            &StoreOptions {
                map_size: 8 << 20,
                read_only: false,
            },
        )
        .unwrap();
        (dir, store)
    }

    fn ext(username: &str, password: &str) -> Extension {
        Extension {
            id: String::new(),
            username: username.into(),
            password: password.into(),
            ha1: BTreeMap::new(),
            display_name: Some("Ann".into()),
            email: None,
            enabled: true,
            allow_guest_calls: false,
            allowed_caller_ids: Vec::new(),
        }
    }

    /// The HA1s digest verification must get for `user:realm:password`.
    fn ha1s(user: &str, realm: &str, password: &str) -> Credential {
        use md5::Digest as _;
        let input = format!("{user}:{realm}:{password}");
        Credential::Ha1 {
            md5: format!("{:x}", md5::Md5::digest(input.as_bytes())),
            sha256: format!("{:x}", sha2::Sha256::digest(input.as_bytes())),
        }
    }

    #[test]
    fn extensions_round_trip_and_the_backend_sees_changes() {
        let (_d, rs) = open();
        let backend = rs.backend();
        assert_eq!(backend.lookup("2001", "pbx.test"), UserLookup::Unknown);
        let a = rs.add_extension(ext("2001", "pw1")).unwrap().unwrap();
        let b = rs.add_extension(ext("2002", "pw2")).unwrap().unwrap();
        assert_eq!((a.id.as_str(), b.id.as_str()), ("1", "2"));
        assert_eq!(rs.add_extension(ext("2001", "x")).unwrap(), None);
        match backend.lookup("2001", "pbx.test") {
            UserLookup::Found(r) => {
                assert_eq!(r.credential, ha1s("2001", "pbx.test", "pw1"));
                assert_eq!(r.display_name.as_deref(), Some("Ann"));
            }
            other => panic!("{other:?}"),
        }
        // Only HA1s are kept, for the configured realms only.
        assert!(a.password.is_empty());
        assert_eq!(backend.lookup("2001", "elsewhere"), UserLookup::Unknown);
        // A rename needs the password: the HA1s hash the name.
        assert_eq!(
            rs.replace_extension("1", ext("2003", ""), None).unwrap(),
            Replaced::NeedsPassword
        );
        let r = rs
            .replace_extension("1", ext("2003", ""), Some("pw3".into()))
            .unwrap();
        let Replaced::Done(c) = r else {
            panic!("{r:?}")
        };
        assert_eq!(c.id, "1");
        assert_eq!(backend.lookup("2001", "pbx.test"), UserLookup::Unknown);
        match backend.lookup("2003", "pbx.test") {
            UserLookup::Found(r) => assert_eq!(r.credential, ha1s("2003", "pbx.test", "pw3")),
            other => panic!("{other:?}"),
        }
        // Without a new password other changes keep the HA1s.
        let renamed = Extension {
            display_name: None,
            ..ext("2003", "")
        };
        rs.replace_extension("1", renamed, None).unwrap();
        match backend.lookup("2003", "pbx.test") {
            UserLookup::Found(r) => {
                assert_eq!(r.credential, ha1s("2003", "pbx.test", "pw3"));
                assert_eq!(r.display_name, None);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            rs.replace_extension("1", ext("2002", "x"), None).unwrap(),
            Replaced::Taken
        );
        assert_eq!(
            rs.replace_extension("9", ext("2009", "x"), None).unwrap(),
            Replaced::Missing
        );
        // Disabled: unknown to SIP.
        let off = Extension {
            enabled: false,
            ..ext("2002", "")
        };
        rs.replace_extension("2", off, Some("pw2b".into())).unwrap();
        assert_eq!(backend.lookup("2002", "pbx.test"), UserLookup::Unknown);
        assert_eq!(
            rs.extension("2").unwrap().unwrap().ha1["pbx.test"],
            RealmHa1::of("2002", "pbx.test", "pw2b")
        );
        assert!(rs.remove_extension("2").unwrap());
        assert!(!rs.remove_extension("2").unwrap());
        // Ids are not reused.
        assert_eq!(rs.add_extension(ext("2004", "p")).unwrap().unwrap().id, "3");
        let names: Vec<_> = rs
            .extensions()
            .unwrap()
            .into_iter()
            .map(|e| e.username)
            .collect();
        assert_eq!(names, ["2003", "2004"]);
    }

    #[test]
    fn plain_passwords_become_ha1s_once_realms_are_known() {
        let (_dir, store) = store();
        {
            // No realm configured: the password itself has to stay.
            let rs = ResourcesStore::open(&store, &[]).unwrap();
            rs.add_extension(ext("2001", "pw1")).unwrap().unwrap();
            match rs.backend().lookup("2001", "10.0.0.1") {
                UserLookup::Found(r) => {
                    assert_eq!(r.credential, Credential::Password("pw1".into()));
                }
                other => panic!("{other:?}"),
            }
        }
        // The next start, with realms in the config.
        let rs = ResourcesStore::open(&store, &["a.test".into(), "b.test".into()]).unwrap();
        let e = rs.extension("1").unwrap().unwrap();
        assert!(e.password.is_empty());
        assert_eq!(e.ha1.len(), 2);
        for realm in ["a.test", "b.test"] {
            match rs.backend().lookup("2001", realm) {
                UserLookup::Found(r) => assert_eq!(r.credential, ha1s("2001", realm, "pw1")),
                other => panic!("{other:?}"),
            }
        }
        // What is stored holds no trace of the password.
        let raw = serde_json::to_string(&e).unwrap();
        assert!(!raw.contains("pw1"), "{raw}");
    }

    #[test]
    fn trunks_and_routes_keep_creation_order() {
        let (_d, rs) = open();
        for i in 0..11 {
            rs.put_trunk(None, format!("t{i}"), TrunkSpec::default())
                .unwrap();
        }
        let names: Vec<_> = rs.trunks().unwrap().into_iter().map(|t| t.name).collect();
        assert_eq!(names.len(), 11);
        assert_eq!(names[10], "t10");
        assert_eq!(names[2], "t2");
        let route = RouteSpec {
            name: "r".into(),
            priority: 5,
            matchers: Default::default(),
            rewrite: Default::default(),
            action: ActionKind::Reject,
            dest: Vec::new(),
            select: None,
            weights: None,
            reject: None,
        };
        let r = rs.put_route(None, route.clone()).unwrap();
        assert_eq!(r.id, "1");
        let changed = RouteSpec {
            priority: 7,
            ..route
        };
        rs.put_route(Some("1"), changed).unwrap();
        assert_eq!(rs.routes().unwrap()[0].spec.priority, 7);
        assert!(rs.delete_route("1").unwrap());
        assert!(rs.routes().unwrap().is_empty());
        assert!(rs.delete_trunk("11").unwrap());
        assert!(!rs.delete_trunk("11").unwrap());
    }
}
