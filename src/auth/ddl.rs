//! Running the role statements (`sql::roles`) with Postgres 15's checks and messages: who may
//! create, alter, drop and grant which roles, and the names that are reserved.
//!
//! A superuser may do anything. A CREATEROLE role may create, alter, drop and grant roles that
//! are not superusers. Any role may change its own password. The bootstrap superuser stays a
//! superuser, keeps its name and cannot be dropped.

use super::{BOOTSTRAP_SUPERUSER, Role, Roles, scram, undefined};
use crate::error::{ErrorKind, Result, WeirError};
use crate::sql::roles::{RoleOption, RoleStatement};

/// What a role statement reports (its command tag).
pub fn execute(
    roles: &Roles,
    statement: RoleStatement,
    acting: &str,
    new_oid: impl FnOnce() -> Result<u32>,
) -> Result<&'static str> {
    let actor = roles.require(acting)?;
    match statement {
        RoleStatement::Create {
            name,
            options,
            login,
        } => {
            create(roles, &actor, &name, &options, login, new_oid)?;
            Ok("CREATE ROLE")
        }
        RoleStatement::Alter { name, options } => {
            alter(roles, &actor, &name, &options)?;
            Ok("ALTER ROLE")
        }
        RoleStatement::Rename { name, to } => {
            rename(roles, &actor, &name, &to)?;
            Ok("ALTER ROLE")
        }
        RoleStatement::Drop { names, if_exists } => {
            drop_roles(roles, &actor, &names, if_exists)?;
            Ok("DROP ROLE")
        }
        RoleStatement::Membership {
            grant,
            roles: granted,
            members,
        } => {
            membership(roles, &actor, grant, &granted, &members)?;
            Ok(if grant { "GRANT ROLE" } else { "REVOKE ROLE" })
        }
    }
}

fn denied(message: &str) -> WeirError {
    WeirError::new(ErrorKind::InsufficientPrivilege, message)
}

/// A name a new (or renamed) role may take: not reserved, not taken.
fn check_free(roles: &Roles, name: &str) -> Result<()> {
    if name == "public" || name == "none" {
        return Err(WeirError::new(
            ErrorKind::ReservedName,
            format!("role name \"{name}\" is reserved"),
        ));
    }
    if name.starts_with("pg_") {
        return Err(WeirError::new(
            ErrorKind::ReservedName,
            format!("role name \"{name}\" is reserved"),
        )
        .with_detail("Role names starting with \"pg_\" are reserved."));
    }
    if roles.exists(name) {
        return Err(WeirError::new(
            ErrorKind::DuplicateObject,
            format!("role \"{name}\" already exists"),
        ));
    }
    Ok(())
}

fn create(
    roles: &Roles,
    actor: &Role,
    name: &str,
    options: &[RoleOption],
    login: bool,
    new_oid: impl FnOnce() -> Result<u32>,
) -> Result<()> {
    if !(actor.superuser || actor.create_role) {
        return Err(denied("permission denied to create role"));
    }
    check_free(roles, name)?;
    let mut role = Role::new(name, 0);
    role.login = login;
    let mut members = Vec::new();
    for option in options {
        match option {
            RoleOption::InRole(of) => {
                for r in of {
                    roles.require(r)?;
                    role.member_of.insert(r.clone());
                }
            }
            RoleOption::Members(names) => members.extend(names.iter().cloned()),
            other => apply(&mut role, other)?,
        }
    }
    if role.superuser && !actor.superuser {
        return Err(denied("must be superuser to create superusers"));
    }
    let mut changed = Vec::new();
    for member in &members {
        let mut m = roles.require(member)?;
        m.member_of.insert(name.to_string());
        changed.push(m);
    }
    role.oid = new_oid()?;
    changed.push(role);
    roles.put(changed, &[])
}

/// Sets one attribute option on `role`.
fn apply(role: &mut Role, option: &RoleOption) -> Result<()> {
    match option {
        RoleOption::Superuser(v) => role.superuser = *v,
        RoleOption::Login(v) => role.login = *v,
        RoleOption::Inherit(v) => role.inherit = *v,
        RoleOption::CreateRole(v) => role.create_role = *v,
        RoleOption::CreateDb(v) => role.create_db = *v,
        RoleOption::ConnectionLimit(n) => role.connection_limit = *n,
        RoleOption::Password(None) => role.password = None,
        // Postgres clears the password on an empty string.
        RoleOption::Password(Some(p)) if p.is_empty() => role.password = None,
        RoleOption::Password(Some(p)) if scram::is_verifier(p) => role.password = Some(p.clone()),
        RoleOption::Password(Some(p)) => role.password = Some(scram::verifier(p)?),
        RoleOption::InRole(_) | RoleOption::Members(_) => {
            return Err(WeirError::internal(
                "membership option applied as attribute",
            ));
        }
    }
    Ok(())
}

fn alter(roles: &Roles, actor: &Role, name: &str, options: &[RoleOption]) -> Result<()> {
    let mut role = roles.require(name)?;
    let only_password = options.iter().all(|o| matches!(o, RoleOption::Password(_)));
    let touches_superuser = options
        .iter()
        .any(|o| matches!(o, RoleOption::Superuser(_)));
    if !actor.superuser {
        if role.superuser || touches_superuser {
            return Err(denied(
                "must be superuser to alter superuser roles or change superuser attribute",
            ));
        }
        if !actor.create_role && !(only_password && actor.name == role.name) {
            return Err(denied("permission denied"));
        }
    }
    for option in options {
        apply(&mut role, option)?;
    }
    if name == BOOTSTRAP_SUPERUSER && !(role.superuser && role.login) {
        return Err(denied("permission denied to alter role").with_detail(format!(
            "The bootstrap user \"{BOOTSTRAP_SUPERUSER}\" must stay a superuser that can log in."
        )));
    }
    roles.put(vec![role], &[])
}

fn rename(roles: &Roles, actor: &Role, name: &str, to: &str) -> Result<()> {
    let mut role = roles.require(name)?;
    if name == actor.name {
        return Err(WeirError::unsupported("current user cannot be renamed"));
    }
    if name == BOOTSTRAP_SUPERUSER {
        return Err(WeirError::unsupported(format!(
            "the bootstrap superuser \"{BOOTSTRAP_SUPERUSER}\" cannot be renamed"
        )));
    }
    if !actor.superuser && (role.superuser || !actor.create_role) {
        return Err(denied("permission denied to rename role"));
    }
    check_free(roles, to)?;
    role.name = to.to_string();
    let mut changed: Vec<Role> = roles
        .all()
        .into_iter()
        .filter(|r| r.member_of.contains(name))
        .map(|mut r| {
            r.member_of.remove(name);
            r.member_of.insert(to.to_string());
            r
        })
        .collect();
    changed.push(role);
    roles.put(changed, &[name.to_string()])
}

fn drop_roles(roles: &Roles, actor: &Role, names: &[String], if_exists: bool) -> Result<()> {
    if !(actor.superuser || actor.create_role) {
        return Err(denied("permission denied to drop role"));
    }
    let mut dropped = Vec::new();
    for name in names {
        let Some(role) = roles.get(name) else {
            if if_exists {
                continue;
            }
            return Err(undefined(name));
        };
        if *name == actor.name {
            return Err(WeirError::new(
                ErrorKind::ObjectInUse,
                "current user cannot be dropped",
            ));
        }
        if name == BOOTSTRAP_SUPERUSER {
            return Err(WeirError::new(
                ErrorKind::DependentObjects,
                format!(
                    "role \"{name}\" cannot be dropped because it is required by the database system"
                ),
            ));
        }
        if role.superuser && !actor.superuser {
            return Err(denied("must be superuser to drop superusers"));
        }
        dropped.push(name.clone());
    }
    let changed: Vec<Role> = roles
        .all()
        .into_iter()
        .filter(|r| !dropped.contains(&r.name) && dropped.iter().any(|d| r.member_of.contains(d)))
        .map(|mut r| {
            r.member_of.retain(|m| !dropped.contains(m));
            r
        })
        .collect();
    roles.put(changed, &dropped)
}

fn membership(
    roles: &Roles,
    actor: &Role,
    grant: bool,
    granted: &[String],
    members: &[String],
) -> Result<()> {
    let mut changed: Vec<Role> = Vec::new();
    for role_name in granted {
        let role = roles.require(role_name)?;
        if !actor.superuser && (role.superuser || !actor.create_role) {
            return Err(denied(&format!(
                "must have admin option on role \"{role_name}\""
            )));
        }
        for member_name in members {
            let mut member = match changed.iter().position(|r| r.name == *member_name) {
                Some(i) => changed.remove(i),
                None => roles.require(member_name)?,
            };
            if grant {
                // A loop: the role already has the member's rights (or is the member).
                if roles.is_member_of(role_name, member_name) {
                    return Err(WeirError::new(
                        ErrorKind::InvalidGrantOperation,
                        format!("role \"{role_name}\" is a member of role \"{member_name}\""),
                    ));
                }
                member.member_of.insert(role_name.clone());
            } else {
                member.member_of.remove(role_name);
            }
            changed.push(member);
        }
    }
    roles.put(changed, &[])
}
