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
//! Extension passwords are stored in plain text: digest auth needs the
//! password (or an HA1 per realm and algorithm, and neither the realm nor
//! SHA-256 is known when the extension is written). The store sits in
//! `data_dir`, as private as the config file whose `memory` users are plain
//! text too. The REST API never returns them.

use heed::types::{Bytes, Str};
use heed::{CommitOrAbort, Database, Env, RwTxn};
use serde::{Deserialize, Serialize};
use shards::routing::{RouteSpec, TrunkSpec};
use shards::store::{Store, StoreError};
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
    /// Plain text (see the module comment); never returned over REST.
    pub password: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    pub enabled: bool,
    pub allow_guest_calls: bool,
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
}

/// The resource databases in the store's environment.
#[derive(Clone)]
pub struct ResourcesStore {
    env: &'static Env,
    extensions: Database<'static, Str, Bytes>,
    trunks: Database<'static, Str, Bytes>,
    routes: Database<'static, Str, Bytes>,
    ids: Database<'static, Str, Bytes>,
}

fn decode<T: for<'de> Deserialize<'de>>(
    what: &str,
    key: &str,
    raw: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(raw).map_err(|e| StoreError(format!("store: {what} {key}: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError(format!("store: {e}")))
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
    /// read-write).
    pub fn open(store: &Store) -> Result<ResourcesStore, StoreError> {
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
        Ok(ResourcesStore {
            env,
            extensions,
            trunks,
            routes,
            ids,
        })
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
            out.push(decode("extension", key, raw)?);
        }
        Ok(out)
    }

    pub fn extension(&self, id: &str) -> Result<Option<Extension>, StoreError> {
        Ok(self.extensions()?.into_iter().find(|e| e.id == id))
    }

    pub fn extension_by_username(&self, username: &str) -> Result<Option<Extension>, StoreError> {
        let rtxn = self.env.read_txn()?;
        match self.extensions.get(&rtxn, username)? {
            Some(raw) => Ok(Some(decode("extension", username, raw)?)),
            None => Ok(None),
        }
    }

    /// The extension with `id` as seen in `txn`.
    fn find_extension(
        &self,
        txn: &heed::RoTxn<'_>,
        id: &str,
    ) -> Result<Option<Extension>, StoreError> {
        for item in self.extensions.iter(txn)? {
            let (key, raw) = item?;
            let e: Extension = decode("extension", key, raw)?;
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
        let ext = Extension {
            id: self.next_id(&mut wtxn, "extensions")?,
            ..ext
        };
        self.extensions
            .put(&mut wtxn, &ext.username, &encode(&ext)?)?;
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
            self.extensions.delete(&mut wtxn, &old.username)?;
        }
        let ext = Extension {
            id: old.id,
            password: password.unwrap_or(old.password),
            ..ext
        };
        self.extensions
            .put(&mut wtxn, &ext.username, &encode(&ext)?)?;
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
            out.push(decode::<StoredTrunk>("trunk", key, raw)?);
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
            out.push(decode::<StoredRoute>("route", key, raw)?);
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
        self.trunks.put(&mut wtxn, &trunk.id, &encode(&trunk)?)?;
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
        self.routes.put(&mut wtxn, &route.id, &encode(&route)?)?;
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
/// extension is unknown here. Any realm.
pub struct ExtensionsBackend {
    env: &'static Env,
    extensions: Database<'static, Str, Bytes>,
}

impl UserBackend for ExtensionsBackend {
    fn lookup(&self, username: &str, _realm: &str) -> UserLookup {
        let found = self.env.read_txn().and_then(|rtxn| {
            Ok(self
                .extensions
                .get(&rtxn, username)?
                .map(serde_json::from_slice::<Extension>))
        });
        match found {
            Ok(Some(Ok(ext))) if ext.enabled => UserLookup::Found(UserRecord {
                username: ext.username,
                credential: Credential::Password(ext.password),
                display_name: ext.display_name,
            }),
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
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path(),
            &StoreOptions {
                map_size: 8 << 20,
                read_only: false,
            },
        )
        .unwrap();
        let rs = ResourcesStore::open(&store).unwrap();
        (dir, rs)
    }

    fn ext(username: &str, password: &str) -> Extension {
        Extension {
            id: String::new(),
            username: username.into(),
            password: password.into(),
            display_name: Some("Ann".into()),
            email: None,
            enabled: true,
            allow_guest_calls: false,
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
        match backend.lookup("2001", "any") {
            UserLookup::Found(r) => {
                assert_eq!(r.credential, Credential::Password("pw1".into()));
                assert_eq!(r.display_name.as_deref(), Some("Ann"));
            }
            other => panic!("{other:?}"),
        }
        // Rename keeps the password when none is given; the old name is gone.
        let r = rs.replace_extension("1", ext("2003", ""), None).unwrap();
        let Replaced::Done(c) = r else {
            panic!("{r:?}")
        };
        assert_eq!((c.id.as_str(), c.password.as_str()), ("1", "pw1"));
        assert_eq!(backend.lookup("2001", "any"), UserLookup::Unknown);
        assert!(matches!(
            backend.lookup("2003", "any"),
            UserLookup::Found(_)
        ));
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
        assert_eq!(backend.lookup("2002", "any"), UserLookup::Unknown);
        assert_eq!(rs.extension("2").unwrap().unwrap().password, "pw2b");
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
