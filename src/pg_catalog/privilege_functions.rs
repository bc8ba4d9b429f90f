//! `has_table_privilege`, `has_database_privilege` and `has_schema_privilege`, answered from
//! the privileges Weir keeps (`auth::privileges`): with a role argument or for the session's
//! role, by relation name or oid, for a comma-separated list of privileges (true when any is
//! held, as in Postgres).

use datafusion::common::ScalarValue;
use datafusion::error::Result as DfResult;

use super::functions::{Call, as_oid, as_text, external};
use crate::auth::privileges::{Object, Privilege};
use crate::error::{ErrorKind, WeirError};

/// Privilege words Postgres knows on tables that Weir has no use for: only owners hold them.
const OWNER_ONLY_TABLE_PRIVILEGES: &[&str] = &["TRUNCATE", "REFERENCES", "TRIGGER", "MAINTAIN"];

/// The role the check is for and the remaining arguments: `(role, x, privileges)` or
/// `(x, privileges)` for the session's role. A role given by oid or name; None when unknown.
fn split_role<'a>(
    call: &Call,
    args: &'a [ScalarValue],
) -> DfResult<(Option<String>, &'a [ScalarValue])> {
    if args.len() < 3 {
        return Ok((Some(crate::auth::current_user().to_string()), args));
    }
    let role = &args[0];
    let name = if role.data_type().is_integer() {
        let oid = as_oid(role);
        call.snap()
            .roles
            .iter()
            .find(|r| Some(r.oid) == oid)
            .map(|r| r.name.clone())
    } else {
        let name = as_text(role).unwrap_or_default();
        if !call.catalog.roles.exists(&name) {
            return Err(external(crate::auth::undefined(&name)));
        }
        Some(name)
    };
    Ok((name, &args[1..]))
}

/// The privilege words of `text` (`'SELECT, INSERT WITH GRANT OPTION'`), upper-cased, each
/// with whether it asks for the grant option.
fn words(text: &ScalarValue) -> DfResult<Vec<(String, bool)>> {
    let text = as_text(text).unwrap_or_default();
    Ok(text
        .split(',')
        .map(|w| {
            let w = w.trim().to_ascii_uppercase();
            match w.strip_suffix("WITH GRANT OPTION") {
                Some(p) => (p.trim().to_string(), true),
                None => (w, false),
            }
        })
        .collect())
}

fn unrecognized(word: &str) -> datafusion::error::DataFusionError {
    external(WeirError::new(
        ErrorKind::InvalidParameter,
        format!(
            "unrecognized privilege type: \"{}\"",
            word.to_ascii_lowercase()
        ),
    ))
}

pub fn has_table_privilege(call: &Call, args: &[ScalarValue]) -> DfResult<ScalarValue> {
    let (Some(user), rest) = split_role(call, args)? else {
        return Ok(ScalarValue::Null);
    };
    let [table, privileges] = rest else {
        return Ok(ScalarValue::Null);
    };
    let snap = call.snap();
    let relation = if table.data_type().is_integer() {
        match as_oid(table).and_then(|o| snap.by_oid(o)) {
            Some(r) => r,
            None => return Ok(ScalarValue::Null),
        }
    } else {
        let name = as_text(table).unwrap_or_default();
        snap.by_name(&name)
            .ok_or_else(|| external(WeirError::undefined_table(&name)))?
    };
    let user_relation = relation.namespace_name() == "public";
    let object = Object::Relation(relation.name.clone());
    let catalog = call.catalog;
    let owns = catalog.privileges.owns(&catalog.roles, &user, &object);
    let mut held = false;
    for (word, grant_option) in words(privileges)? {
        held |= match Privilege::from_keyword(&word) {
            Some(Privilege::Create) | None
                if !OWNER_ONLY_TABLE_PRIVILEGES.contains(&word.as_str()) =>
            {
                return Err(unrecognized(&word));
            }
            // System catalogs: everyone reads them; only superusers could change them.
            _ if !user_relation => {
                word == "SELECT" && !grant_option || catalog.roles.is_superuser(&user)
            }
            _ if grant_option => owns,
            Some(p) => catalog.privileges.has(&catalog.roles, &user, &object, p),
            None => owns,
        };
    }
    Ok(ScalarValue::Boolean(Some(held)))
}

/// `has_column_privilege`: Weir grants on whole relations, so a column's privileges are its
/// relation's.
pub fn has_column_privilege(call: &Call, args: &[ScalarValue]) -> DfResult<ScalarValue> {
    let mut without_column = args.to_vec();
    if args.len() >= 3 {
        without_column.remove(args.len() - 2);
    }
    has_table_privilege(call, &without_column)
}

/// `has_database_privilege` (`weir`) and `has_schema_privilege` (`public` and the system
/// schemas): CREATE is the right to create objects; CONNECT, TEMPORARY and USAGE everyone has.
pub fn has_database_or_schema_privilege(
    call: &Call,
    args: &[ScalarValue],
) -> DfResult<ScalarValue> {
    let (Some(user), rest) = split_role(call, args)? else {
        return Ok(ScalarValue::Null);
    };
    let [target, privileges] = rest else {
        return Ok(ScalarValue::Null);
    };
    let name = match as_oid(target) {
        Some(super::PUBLIC_NAMESPACE) if target.data_type().is_integer() => "public".to_string(),
        Some(super::DATABASE_OID) if target.data_type().is_integer() => {
            super::DATABASE_NAME.to_string()
        }
        _ => as_text(target).unwrap_or_default(),
    };
    let catalog = call.catalog;
    let mut held = false;
    for (word, grant_option) in words(privileges)? {
        held |= match word.as_str() {
            "CREATE" if name == "public" || name == super::DATABASE_NAME => {
                let may = catalog.privileges.has(
                    &catalog.roles,
                    &user,
                    &Object::Database,
                    Privilege::Create,
                );
                may && (!grant_option || catalog.roles.is_superuser(&user))
            }
            "CREATE" => catalog.roles.is_superuser(&user),
            "USAGE" | "CONNECT" | "TEMPORARY" | "TEMP" => true,
            other => return Err(unrecognized(other)),
        };
    }
    Ok(ScalarValue::Boolean(Some(held)))
}
