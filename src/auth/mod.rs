//! Users and roles: who may connect, as whom, and with what attributes.
//!
//! Roles are Postgres's: a user is a role with LOGIN; roles are members of other roles
//! (`GRANT admins TO alice`); a SUPERUSER may do anything, a CREATEROLE role may create and
//! alter roles that are not superusers. Passwords are kept only as SCRAM-SHA-256 verifiers
//! ([`scram`]). Each role is one JSON entry under the `r` prefix of the store
//! (`state::keys`), loaded at start-up; the first start creates the superuser
//! [`BOOTSTRAP_SUPERUSER`].
//!
//! The role a statement runs as is task-local ([`CURRENT_USER`]), set by the front door that
//! authenticated the connection (the Postgres wire, the Kafka listener's SASL); work that no
//! client started (start-up
//! replay, HTTP ingest, benches) runs as the bootstrap superuser.

pub mod ddl;
pub mod privileges;
pub mod scram;
pub mod scram_exchange;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, Result, WeirError};
use crate::state::{StateStore, WriteBatch, keys};

/// The superuser the first start creates; it owns the database and cannot be dropped.
pub const BOOTSTRAP_SUPERUSER: &str = "weir";
/// Its oid, as Postgres's bootstrap superuser (`pg_authid` oid 10).
pub const BOOTSTRAP_OID: u32 = 10;

tokio::task_local! {
    /// The role the running statement acts as (the session's user).
    pub static CURRENT_USER: Arc<str>;
}

/// The role the running statement acts as.
pub fn current_user() -> Arc<str> {
    CURRENT_USER
        .try_with(Arc::clone)
        .unwrap_or_else(|_| Arc::from(BOOTSTRAP_SUPERUSER))
}

/// One role, as stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub oid: u32,
    pub superuser: bool,
    pub login: bool,
    pub inherit: bool,
    pub create_role: bool,
    pub create_db: bool,
    /// Most concurrent connections as this role; -1: no limit.
    pub connection_limit: i32,
    /// A SCRAM-SHA-256 verifier; None: password authentication always fails.
    pub password: Option<String>,
    /// The roles this one is a direct member of.
    pub member_of: BTreeSet<String>,
}

impl Role {
    /// A role with Postgres's defaults for CREATE ROLE (CREATE USER adds LOGIN).
    pub fn new(name: &str, oid: u32) -> Role {
        Role {
            name: name.to_string(),
            oid,
            superuser: false,
            login: false,
            inherit: true,
            create_role: false,
            create_db: false,
            connection_limit: -1,
            password: None,
            member_of: BTreeSet::new(),
        }
    }
}

/// Every role, in memory and in the store.
pub struct Roles {
    store: Arc<dyn StateStore>,
    roles: RwLock<BTreeMap<String, Role>>,
}

impl Roles {
    /// Loads the stored roles; on a store that has none, creates [`BOOTSTRAP_SUPERUSER`] with
    /// `init_password` (if given).
    pub fn open(store: Arc<dyn StateStore>, init_password: Option<&str>) -> Result<Roles> {
        let mut roles = BTreeMap::new();
        for (_, value) in store.scan_prefix(&[keys::ROLES])? {
            let role: Role = serde_json::from_slice(&value)
                .map_err(|e| WeirError::internal(format!("corrupt role entry: {e}")))?;
            roles.insert(role.name.clone(), role);
        }
        let roles = Roles {
            store,
            roles: RwLock::new(roles),
        };
        if !roles.exists(BOOTSTRAP_SUPERUSER) {
            let mut weir = Role::new(BOOTSTRAP_SUPERUSER, BOOTSTRAP_OID);
            weir.superuser = true;
            weir.login = true;
            weir.create_role = true;
            weir.create_db = true;
            weir.password = init_password.map(scram::verifier).transpose()?;
            roles.put(vec![weir], &[])?;
        }
        Ok(roles)
    }

    pub fn get(&self, name: &str) -> Option<Role> {
        self.roles.read().expect("roles lock").get(name).cloned()
    }

    pub fn exists(&self, name: &str) -> bool {
        self.roles.read().expect("roles lock").contains_key(name)
    }

    /// Every role, by name.
    pub fn all(&self) -> Vec<Role> {
        self.roles
            .read()
            .expect("roles lock")
            .values()
            .cloned()
            .collect()
    }

    /// Writes `changed` roles and deletes `dropped` ones, durably, then in memory.
    pub fn put(&self, changed: Vec<Role>, dropped: &[String]) -> Result<()> {
        let mut batch = WriteBatch::default();
        for role in &changed {
            let json = serde_json::to_vec(role)
                .map_err(|e| WeirError::internal(format!("role encode: {e}")))?;
            batch.put(keys::role_key(&role.name), json);
        }
        for name in dropped {
            batch.delete(keys::role_key(name));
        }
        self.store.commit(batch)?;
        let mut roles = self.roles.write().expect("roles lock");
        for name in dropped {
            roles.remove(name);
        }
        for role in changed {
            roles.insert(role.name.clone(), role);
        }
        Ok(())
    }

    /// Whether `member` has the rights of `role`: it is `role`, or a member of it with every
    /// role on the way (`member` included) inheriting (Postgres's `has_privs_of_role`).
    pub fn has_privileges_of(&self, member: &str, role: &str) -> bool {
        self.reaches(member, role, false)
    }

    /// Whether `member` is `role` or a member of it, directly or through other roles, whether
    /// they inherit or not (Postgres's `is_member_of_role`: what a membership loop would be).
    pub fn is_member_of(&self, member: &str, role: &str) -> bool {
        self.reaches(member, role, true)
    }

    fn reaches(&self, member: &str, role: &str, through_noinherit: bool) -> bool {
        let roles = self.roles.read().expect("roles lock");
        let mut seen = BTreeSet::new();
        let mut pending = vec![member];
        while let Some(name) = pending.pop() {
            if name == role {
                return true;
            }
            if !seen.insert(name) {
                continue;
            }
            if let Some(r) = roles.get(name)
                && (through_noinherit || r.inherit)
            {
                pending.extend(r.member_of.iter().map(String::as_str));
            }
        }
        false
    }

    /// Whether `name` is a superuser (false for a role that does not exist).
    pub fn is_superuser(&self, name: &str) -> bool {
        self.roles
            .read()
            .expect("roles lock")
            .get(name)
            .is_some_and(|r| r.superuser)
    }

    /// The role `name`, or 42704 `role "name" does not exist`.
    pub fn require(&self, name: &str) -> Result<Role> {
        self.get(name).ok_or_else(|| undefined(name))
    }
}

pub(crate) fn undefined(name: &str) -> WeirError {
    WeirError::new(
        ErrorKind::UndefinedObject,
        format!("role \"{name}\" does not exist"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StoreKind;

    #[test]
    fn bootstrap_superuser_is_created_once_and_roles_persist() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = StoreKind::Fjall.open(dir.path()).unwrap();
            let roles = Roles::open(store, Some("pw")).unwrap();
            let weir = roles.require(BOOTSTRAP_SUPERUSER).unwrap();
            assert!(weir.superuser && weir.login);
            assert!(scram::is_verifier(weir.password.as_deref().unwrap()));
            let mut alice = Role::new("alice", 16384);
            alice.member_of.insert("admins".into());
            roles
                .put(vec![Role::new("admins", 16388), alice], &[])
                .unwrap();
        }
        let store = StoreKind::Fjall.open(dir.path()).unwrap();
        let roles = Roles::open(store, Some("other")).unwrap();
        let names: Vec<String> = roles.all().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["admins", "alice", "weir"]);
        assert!(roles.has_privileges_of("alice", "admins"));
        assert!(!roles.has_privileges_of("admins", "alice"));
        // The init password is applied at the first start only.
        let weir = roles.require(BOOTSTRAP_SUPERUSER).unwrap();
        let first = scram::parse(weir.password.as_deref().unwrap()).unwrap();
        let pgwire::api::auth::sasl::scram::ScramSecret::Verifier { salt, .. } = first else {
            panic!()
        };
        assert_eq!(
            scram::verifier_with_salt("pw", &salt, scram::SCRAM_ITERATIONS),
            weir.password.unwrap()
        );
    }

    #[test]
    fn membership_without_inherit_grants_no_privileges() {
        let dir = tempfile::tempdir().unwrap();
        let roles = Roles::open(StoreKind::Fjall.open(dir.path()).unwrap(), None).unwrap();
        let mut bob = Role::new("bob", 16384);
        bob.member_of.insert("mid".into());
        let mut mid = Role::new("mid", 16388);
        mid.inherit = false;
        mid.member_of.insert("top".into());
        roles
            .put(vec![bob, mid, Role::new("top", 16392)], &[])
            .unwrap();
        assert!(roles.has_privileges_of("bob", "mid"));
        assert!(!roles.has_privileges_of("bob", "top"));
        assert!(!roles.has_privileges_of("mid", "top"));
        assert!(roles.is_member_of("bob", "top"));
    }
}
