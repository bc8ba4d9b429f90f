//! Privileges on objects: who owns each relation, topic and the database, what others were
//! granted (`GRANT SELECT ON t TO alice`), and the check every front door makes before it
//! reads, writes, creates or drops ([`Privileges::has`]).
//!
//! Postgres's rules: a superuser may do anything; an object's owner (and every role with the
//! owner's rights) has every privilege on it and alone may drop it or grant on it; another role
//! has what was granted to it, to a role whose rights it has, or to PUBLIC. A new object
//! belongs to the role that created it and grants nothing to anyone else. Creating objects
//! takes CREATE on the database, which only superusers have until it is granted (as on
//! Postgres 15's `public` schema). No grant carries a grant option.
//!
//! Each object's owner and grants are one JSON entry under the `p` prefix of the store
//! (`state::keys`), loaded at start-up. An object with no entry (made before privileges
//! existed) belongs to the bootstrap superuser.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::{BOOTSTRAP_SUPERUSER, Roles};
use crate::error::{ErrorKind, Result, WeirError};
use crate::state::{StateStore, WriteBatch, keys};

/// The grantee that stands for every role (its name is reserved for roles).
pub const PUBLIC: &str = "public";

/// One privilege; an object kind takes some of them ([`Privilege::valid_on`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Privilege {
    Select,
    Insert,
    Update,
    Delete,
    /// On the database: creating topics, sources, tables, views and sinks.
    Create,
}

impl Privilege {
    /// Every privilege, in the order `aclitem` letters are printed.
    pub const ALL: [Privilege; 5] = [
        Privilege::Insert,
        Privilege::Select,
        Privilege::Update,
        Privilege::Delete,
        Privilege::Create,
    ];

    fn bit(self) -> u8 {
        match self {
            Privilege::Select => 1,
            Privilege::Insert => 2,
            Privilege::Update => 4,
            Privilege::Delete => 8,
            Privilege::Create => 16,
        }
    }

    /// Its letter in Postgres's `aclitem` text (`alice=ar/weir`).
    fn letter(self) -> char {
        match self {
            Privilege::Select => 'r',
            Privilege::Insert => 'a',
            Privilege::Update => 'w',
            Privilege::Delete => 'd',
            Privilege::Create => 'C',
        }
    }

    pub fn keyword(self) -> &'static str {
        match self {
            Privilege::Select => "SELECT",
            Privilege::Insert => "INSERT",
            Privilege::Update => "UPDATE",
            Privilege::Delete => "DELETE",
            Privilege::Create => "CREATE",
        }
    }

    pub fn from_keyword(word: &str) -> Option<Privilege> {
        Privilege::ALL
            .into_iter()
            .find(|p| p.keyword().eq_ignore_ascii_case(word))
    }

    /// The privileges an object of this kind takes: a table's rows are read, inserted,
    /// updated and deleted; a source's and a topic's are read and appended to; a view is only
    /// read; a sink is only owned; the database takes CREATE.
    pub fn valid_on(kind: ObjectKind) -> &'static [Privilege] {
        use Privilege::*;
        match kind {
            ObjectKind::Table => &[Select, Insert, Update, Delete],
            ObjectKind::Source | ObjectKind::Topic => &[Select, Insert],
            ObjectKind::MaterializedView => &[Select],
            ObjectKind::Sink => &[],
            ObjectKind::Database => &[Create],
        }
    }
}

/// What kind of object a privilege is on (for messages and the privileges it takes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    Table,
    Source,
    MaterializedView,
    Sink,
    Topic,
    Database,
}

impl ObjectKind {
    /// The kind of a catalog relation.
    pub fn of(kind: crate::catalog::ItemKind) -> ObjectKind {
        use crate::catalog::ItemKind;
        match kind {
            ItemKind::Source => ObjectKind::Source,
            ItemKind::Table => ObjectKind::Table,
            ItemKind::MaterializedView => ObjectKind::MaterializedView,
            ItemKind::Sink => ObjectKind::Sink,
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            ObjectKind::Table => "table",
            ObjectKind::Source => "source",
            ObjectKind::MaterializedView => "materialized view",
            ObjectKind::Sink => "sink",
            ObjectKind::Topic => "topic",
            ObjectKind::Database => "database",
        }
    }
}

/// An object privileges are kept for. Relations (sources, tables, views, sinks) share one
/// namespace; topics have their own.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Object {
    Relation(String),
    Topic(String),
    Database,
}

impl Object {
    fn key(&self) -> String {
        match self {
            Object::Relation(name) => format!("r/{name}"),
            Object::Topic(name) => format!("t/{name}"),
            Object::Database => "d".to_string(),
        }
    }

    fn from_key(key: &str) -> Option<Object> {
        match key.split_once('/') {
            Some(("r", name)) => Some(Object::Relation(name.to_string())),
            Some(("t", name)) => Some(Object::Topic(name.to_string())),
            None if key == "d" => Some(Object::Database),
            _ => None,
        }
    }
}

/// One object's owner and what others were granted, as stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Acl {
    pub owner: String,
    /// Grantee (a role, or [`PUBLIC`]) → privilege bits.
    pub grants: BTreeMap<String, u8>,
}

impl Acl {
    pub fn owned_by(owner: &str) -> Acl {
        Acl {
            owner: owner.to_string(),
            grants: BTreeMap::new(),
        }
    }

    /// Postgres's `aclitem` texts: the owner's own privileges first, then each grant, as
    /// `grantee=letters/owner` (PUBLIC's grantee is empty).
    pub fn items(&self, kind: ObjectKind) -> Vec<String> {
        let valid: u8 = Privilege::valid_on(kind).iter().map(|p| p.bit()).sum();
        let mut items = vec![self.item(&self.owner, valid)];
        for (grantee, bits) in &self.grants {
            items.push(self.item(grantee, *bits));
        }
        items
    }

    fn item(&self, grantee: &str, bits: u8) -> String {
        let letters: String = Privilege::ALL
            .into_iter()
            .filter(|p| bits & p.bit() != 0)
            .map(Privilege::letter)
            .collect();
        let grantee = if grantee == PUBLIC { "" } else { grantee };
        format!("{grantee}={letters}/{}", self.owner)
    }

    /// Each (grantee, privilege) this ACL gives, the owner's own included.
    pub fn privileges(&self, kind: ObjectKind) -> Vec<(String, Privilege)> {
        let mut out: Vec<(String, Privilege)> = Privilege::valid_on(kind)
            .iter()
            .map(|p| (self.owner.clone(), *p))
            .collect();
        for (grantee, bits) in &self.grants {
            for p in Privilege::ALL {
                if bits & p.bit() != 0 {
                    out.push((grantee.clone(), p));
                }
            }
        }
        out
    }
}

/// Every object's owner and grants, in memory and in the store.
pub struct Privileges {
    store: Arc<dyn StateStore>,
    acls: RwLock<BTreeMap<Object, Acl>>,
}

impl Privileges {
    pub fn open(store: Arc<dyn StateStore>) -> Result<Privileges> {
        let mut acls = BTreeMap::new();
        for (key, value) in store.scan_prefix(&[keys::PRIVILEGES])? {
            let object = std::str::from_utf8(&key[1..])
                .ok()
                .and_then(Object::from_key)
                .ok_or_else(|| WeirError::internal("corrupt privileges key"))?;
            let acl: Acl = serde_json::from_slice(&value)
                .map_err(|e| WeirError::internal(format!("corrupt privileges entry: {e}")))?;
            acls.insert(object, acl);
        }
        Ok(Privileges {
            store,
            acls: RwLock::new(acls),
        })
    }

    /// The owner and grants of `object` (the bootstrap superuser's, granting nothing, when
    /// none were recorded).
    pub fn acl(&self, object: &Object) -> Acl {
        self.acls
            .read()
            .expect("privileges lock")
            .get(object)
            .cloned()
            .unwrap_or_else(|| Acl::owned_by(BOOTSTRAP_SUPERUSER))
    }

    /// Records a new object: `owner` owns it and nobody else has anything on it (whatever an
    /// earlier object of the same name had).
    pub fn created(&self, object: Object, owner: &str) -> Result<()> {
        self.put(object, Acl::owned_by(owner))
    }

    /// Forgets a dropped object's privileges: from memory now, from the store with `batch`.
    pub fn forget(&self, object: &Object, batch: &mut WriteBatch) {
        batch.delete(keys::privileges_key(&object.key()));
        self.acls.write().expect("privileges lock").remove(object);
    }

    fn put(&self, object: Object, acl: Acl) -> Result<()> {
        self.put_all(vec![(object, acl)])
    }

    /// Writes `changed` entries in one commit, then in memory.
    fn put_all(&self, changed: Vec<(Object, Acl)>) -> Result<()> {
        let mut batch = WriteBatch::default();
        for (object, acl) in &changed {
            let json = serde_json::to_vec(acl)
                .map_err(|e| WeirError::internal(format!("privileges encode: {e}")))?;
            batch.put(keys::privileges_key(&object.key()), json);
        }
        self.store.commit(batch)?;
        self.acls.write().expect("privileges lock").extend(changed);
        Ok(())
    }

    /// Every entry `change` alters (it returns false for the ones it leaves alone), written in
    /// one commit.
    fn update_all(&self, mut change: impl FnMut(&mut Acl) -> bool) -> Result<()> {
        let changed: Vec<(Object, Acl)> = self
            .acls
            .read()
            .expect("privileges lock")
            .iter()
            .filter_map(|(object, acl)| {
                let mut acl = acl.clone();
                change(&mut acl).then(|| (object.clone(), acl))
            })
            .collect();
        self.put_all(changed)
    }

    /// The owner of `object` and its grants, borrowed for `f`.
    fn with_acl<T>(&self, object: &Object, f: impl FnOnce(&str, &BTreeMap<String, u8>) -> T) -> T {
        let acls = self.acls.read().expect("privileges lock");
        match acls.get(object) {
            Some(acl) => f(&acl.owner, &acl.grants),
            None => f(BOOTSTRAP_SUPERUSER, &BTreeMap::new()),
        }
    }

    /// Whether `user` owns `object`: it is a superuser, or has the owner's rights.
    pub fn owns(&self, roles: &Roles, user: &str, object: &Object) -> bool {
        roles.is_superuser(user)
            || self.with_acl(object, |owner, _| roles.has_privileges_of(user, owner))
    }

    /// Whether `user` may use `privilege` on `object`.
    pub fn has(&self, roles: &Roles, user: &str, object: &Object, privilege: Privilege) -> bool {
        self.has_one_of(roles, user, object, privilege.bit())
    }

    /// Whether `user` has any privilege on `object` (what Kafka's Metadata lists).
    pub fn has_any(&self, roles: &Roles, user: &str, object: &Object) -> bool {
        let every = Privilege::ALL.iter().fold(0, |bits, p| bits | p.bit());
        self.has_one_of(roles, user, object, every)
    }

    /// Whether `user` holds at least one of the privileges in `bits` on `object`.
    fn has_one_of(&self, roles: &Roles, user: &str, object: &Object, bits: u8) -> bool {
        if roles.is_superuser(user) {
            return true;
        }
        self.with_acl(object, |owner, grants| {
            roles.has_privileges_of(user, owner)
                || grants.iter().any(|(grantee, granted)| {
                    granted & bits != 0
                        && (grantee == PUBLIC || roles.has_privileges_of(user, grantee))
                })
        })
    }

    /// GRANT (`grant` true) or REVOKE `privileges` on `object` to or from `grantees`.
    pub fn change(
        &self,
        object: Object,
        privileges: &[Privilege],
        grantees: &[String],
        grant: bool,
    ) -> Result<()> {
        let mut acl = self.acl(&object);
        let bits: u8 = privileges.iter().map(|p| p.bit()).fold(0, |a, b| a | b);
        for grantee in grantees {
            if *grantee == acl.owner {
                continue; // the owner has every privilege already, as in Postgres
            }
            let entry = acl.grants.entry(grantee.clone()).or_default();
            if grant {
                *entry |= bits;
            } else {
                *entry &= !bits;
            }
            if *entry == 0 {
                acl.grants.remove(grantee);
            }
        }
        self.put(object, acl)
    }

    /// `owner` owns `object` from now on, with its grants kept (the new owner's own grant
    /// goes: an owner has every privilege).
    pub fn set_owner(&self, object: Object, owner: &str) -> Result<()> {
        let mut acl = self.acl(&object);
        give(&mut acl, owner);
        self.put(object, acl)
    }

    /// Every object owned by one of `from`, now owned by `to` (REASSIGN OWNED).
    pub fn reassign(&self, from: &[String], to: &str) -> Result<()> {
        self.update_all(|acl| {
            let owned = from.contains(&acl.owner);
            if owned {
                give(acl, to);
            }
            owned
        })
    }

    /// Takes back every privilege granted to `role` (DROP OWNED).
    pub fn revoke_all(&self, role: &str) -> Result<()> {
        self.update_all(|acl| acl.grants.remove(role).is_some())
    }

    /// A renamed role keeps what it owns and was granted.
    pub fn rename_role(&self, from: &str, to: &str) -> Result<()> {
        self.update_all(|acl| {
            let owned = acl.owner == from;
            if owned {
                acl.owner = to.to_string();
            }
            let granted = acl.grants.remove(from);
            if let Some(bits) = granted {
                acl.grants.insert(to.to_string(), bits);
            }
            owned || granted.is_some()
        })
    }

    /// What stops `role` from being dropped: the objects it owns and those it was granted
    /// privileges on, as `(owns, object)`.
    pub fn held_by(&self, role: &str) -> Vec<(bool, Object)> {
        self.acls
            .read()
            .expect("privileges lock")
            .iter()
            .filter_map(|(object, acl)| {
                if acl.owner == role {
                    Some((true, object.clone()))
                } else if acl.grants.contains_key(role) {
                    Some((false, object.clone()))
                } else {
                    None
                }
            })
            .collect()
    }
}

/// Makes `owner` the owner of `acl`; its own grant goes (an owner has every privilege).
fn give(acl: &mut Acl, owner: &str) {
    acl.owner = owner.to_string();
    acl.grants.remove(owner);
}

/// 42501 `permission denied for <kind> <name>`.
pub fn denied(kind: ObjectKind, name: &str) -> WeirError {
    WeirError::new(
        ErrorKind::InsufficientPrivilege,
        format!("permission denied for {} {name}", kind.noun()),
    )
}

/// 42501 `must be owner of <kind> <name>`.
pub fn not_owner(kind: ObjectKind, name: &str) -> WeirError {
    WeirError::new(
        ErrorKind::InsufficientPrivilege,
        format!("must be owner of {} {name}", kind.noun()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use crate::state::StoreKind;

    #[test]
    fn owners_grants_and_public_decide_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreKind::Fjall.open(dir.path()).unwrap();
        let roles = Roles::open(store.clone(), None).unwrap();
        let mut alice = Role::new("alice", 16384);
        alice.member_of.insert("readers".into());
        roles
            .put(
                vec![alice, Role::new("readers", 16385), Role::new("bob", 16386)],
                &[],
            )
            .unwrap();
        let t = Object::Relation("t".into());
        {
            let privileges = Privileges::open(store.clone()).unwrap();
            // Nothing recorded: the bootstrap superuser owns it.
            assert!(privileges.owns(&roles, "weir", &t));
            assert!(!privileges.has(&roles, "bob", &t, Privilege::Select));
            privileges.created(t.clone(), "bob").unwrap();
            privileges
                .change(t.clone(), &[Privilege::Select], &["readers".into()], true)
                .unwrap();
        }
        let privileges = Privileges::open(store).unwrap();
        assert!(privileges.owns(&roles, "bob", &t));
        assert!(privileges.has(&roles, "alice", &t, Privilege::Select));
        assert!(!privileges.has(&roles, "alice", &t, Privilege::Insert));
        let table = ObjectKind::Table;
        assert_eq!(
            privileges.acl(&t).items(table),
            ["bob=arwd/bob", "readers=r/bob"]
        );
        privileges
            .change(t.clone(), &[Privilege::Insert], &[PUBLIC.into()], true)
            .unwrap();
        assert!(privileges.has(&roles, "weir", &t, Privilege::Delete));
        assert!(privileges.has(&roles, "alice", &t, Privilege::Insert));
        assert_eq!(privileges.acl(&t).items(table)[1], "=a/bob");
        privileges.rename_role("bob", "robert").unwrap();
        assert_eq!(privileges.held_by("robert"), [(true, t.clone())]);
        assert_eq!(privileges.held_by("readers"), [(false, t.clone())]);
        // A new object of the same name starts afresh.
        privileges.created(t.clone(), "alice").unwrap();
        assert_eq!(privileges.acl(&t).items(table), ["alice=arwd/alice"]);
    }
}
