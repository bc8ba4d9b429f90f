//! Who may do what, checked before a statement acts: SELECT on every relation a query reads,
//! INSERT / UPDATE / DELETE on what it writes, CREATE on the database to create objects,
//! ownership to drop them, and GRANT / REVOKE on objects. The rules and where they are kept are
//! `auth::privileges`; every check here acts as the statement's role (`auth::current_user`),
//! which is the bootstrap superuser for work no client started (start-up, HTTP ingest).

use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::sql::sqlparser::ast;

use super::{Database, Output, Tag, object_name};
use crate::auth::privileges::{self, Object, ObjectKind, Privilege};
use crate::catalog::Entry;
use crate::error::{ErrorKind, Result, WeirError};
use crate::pg_catalog::DATABASE_NAME;
use crate::sql::grants::{GrantTarget, Grantee, ObjectGrant, OwnerChange};
use crate::sql::parse::Statement;
use crate::sql::roles::RoleStatement;
use crate::state::WriteBatch;

/// The one schema user objects live in.
const SCHEMA_NAME: &str = "public";

impl Database {
    /// Whether the statement's role may use `privilege` on `object`.
    pub fn may(&self, object: &Object, privilege: Privilege) -> bool {
        let user = crate::auth::current_user();
        self.catalog
            .privileges
            .has(&self.catalog.roles, &user, object, privilege)
    }

    /// Whether the statement's role has any privilege on `object` (sees it in Kafka Metadata).
    pub fn may_see(&self, object: &Object) -> bool {
        let user = crate::auth::current_user();
        self.catalog
            .privileges
            .has_any(&self.catalog.roles, &user, object)
    }

    /// Whether the statement's role owns `object` (or is a superuser).
    pub fn owns(&self, object: &Object) -> bool {
        let user = crate::auth::current_user();
        self.catalog
            .privileges
            .owns(&self.catalog.roles, &user, object)
    }

    /// What `object` is, for messages; None for a relation that does not exist.
    fn kind_of(&self, object: &Object) -> Option<(ObjectKind, String)> {
        match object {
            Object::Relation(name) => self
                .catalog
                .get(name)
                .map(|e| (ObjectKind::of(e.item().kind), name.clone())),
            Object::Topic(name) => Some((ObjectKind::Topic, name.clone())),
            Object::Database => Some((ObjectKind::Database, DATABASE_NAME.to_string())),
        }
    }

    /// 42501 unless the statement's role may use `privilege` on `object`.
    pub fn require(&self, object: &Object, privilege: Privilege) -> Result<()> {
        if self.may(object, privilege) {
            return Ok(());
        }
        // A relation that does not exist: the statement says so itself (42P01).
        let Some((kind, name)) = self.kind_of(object) else {
            return Ok(());
        };
        let mut e = privileges::denied(kind, &name);
        if *object == Object::Database {
            e = e.with_hint(format!(
                "creating objects takes CREATE on the database: a superuser can run GRANT CREATE \
                 ON DATABASE {DATABASE_NAME} TO {}",
                crate::auth::current_user()
            ));
        }
        Err(e)
    }

    /// 42501 unless the statement's role owns `object`; Ok for a relation that does not exist
    /// (the statement reports that itself).
    pub(super) fn require_owner(&self, object: &Object) -> Result<()> {
        match self.kind_of(object) {
            Some((kind, name)) if !self.owns(object) => Err(privileges::not_owner(kind, &name)),
            _ => Ok(()),
        }
    }

    /// The statement's role owns `object` from now on, and nobody else has anything on it.
    pub fn record_owner(&self, object: Object) -> Result<()> {
        self.catalog
            .privileges
            .created(object, &crate::auth::current_user())
    }

    /// Forgets a dropped topic's privileges.
    pub(super) fn forget_topic(&self, name: &str) -> Result<()> {
        let mut batch = WriteBatch::default();
        self.catalog
            .privileges
            .forget(&Object::Topic(name.to_string()), &mut batch);
        self.store.commit(batch)
    }

    /// The checks a statement needs before it runs that do not depend on its plan (a query's
    /// reads are checked once it is planned: [`Database::check_reads`]).
    pub(super) fn authorize(&self, stmt: &Statement) -> Result<()> {
        let relation = |name: &str| Object::Relation(name.to_string());
        match stmt {
            Statement::CreateTopic { .. } => self.require(&Object::Database, Privilege::Create),
            Statement::CreateSource(create) => {
                self.require(&Object::Database, Privilege::Create)?;
                let topic = create.topic.as_ref().unwrap_or(&create.name);
                if create.generator.is_none() && self.topics.topic(topic).is_some() {
                    // A source reads its topic's records, and its owner may append to them.
                    self.require(&Object::Topic(topic.clone()), Privilege::Select)?;
                }
                Ok(())
            }
            Statement::CreateSink(create) => {
                self.require(&Object::Database, Privilege::Create)?;
                self.require(&relation(&create.view), Privilege::Select)?;
                if self.topics.topic(&create.topic).is_some() {
                    self.require(&Object::Topic(create.topic.clone()), Privilege::Insert)?;
                }
                Ok(())
            }
            Statement::DropSink { name, .. } | Statement::DropSource { name, .. } => {
                self.require_owner(&relation(name))
            }
            Statement::Standard(inner) => match inner.as_ref() {
                ast::Statement::CreateTable(_) | ast::Statement::CreateView(_) => {
                    self.require(&Object::Database, Privilege::Create)
                }
                ast::Statement::Drop { names, .. } => {
                    for name in names {
                        self.require_owner(&relation(&object_name(name)?))?;
                    }
                    Ok(())
                }
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// After a CREATE succeeded: the role that ran it owns what it made. `before` is
    /// [`Database::may_create`]'s answer from before it ran (an `IF NOT EXISTS` that found its
    /// object made nothing).
    pub(super) fn record_created(&self, before: &[(Object, bool)]) -> Result<()> {
        for (object, existed) in before {
            if !existed && self.exists(object) {
                self.record_owner(object.clone())?;
            }
        }
        Ok(())
    }

    fn exists(&self, object: &Object) -> bool {
        match object {
            Object::Relation(name) => self.catalog.get(name).is_some(),
            Object::Topic(name) => self.topics.topic(name).is_some(),
            Object::Database => true,
        }
    }

    /// The objects a CREATE may make, each with whether it exists now.
    pub(super) fn may_create(&self, stmt: &Statement) -> Vec<(Object, bool)> {
        let mut objects = Vec::new();
        match stmt {
            Statement::CreateTopic { name, .. } => objects.push(Object::Topic(name.clone())),
            Statement::CreateSource(create) => {
                objects.push(Object::Relation(create.name.clone()));
                objects.push(Object::Topic(
                    create.topic.clone().unwrap_or(create.name.clone()),
                ));
            }
            Statement::CreateSink(create) => {
                objects.push(Object::Relation(create.name.clone()));
                objects.push(Object::Topic(create.topic.clone()));
            }
            Statement::Standard(inner) => {
                let name = match inner.as_ref() {
                    ast::Statement::CreateTable(t) => object_name(&t.name).ok(),
                    ast::Statement::CreateView(v) => object_name(&v.name).ok(),
                    _ => None,
                };
                objects.extend(name.map(Object::Relation));
            }
            _ => {}
        }
        objects
            .into_iter()
            .map(|o| {
                let exists = self.exists(&o);
                (o, exists)
            })
            .collect()
    }

    /// SELECT on every relation of the catalog that `plan` reads (subqueries included).
    pub fn check_reads(&self, plan: &LogicalPlan) -> Result<()> {
        let mut names = Vec::new();
        relations_read(plan, &mut names)?;
        for name in names {
            if self.catalog.get(&name).is_some() {
                self.require(&Object::Relation(name), Privilege::Select)?;
            }
        }
        Ok(())
    }

    /// `privilege` on a source or table a statement writes; a source's owner must also be
    /// allowed to append to the source's topic.
    pub(crate) fn require_write(&self, target: &Entry, privilege: Privilege) -> Result<()> {
        let name = &target.item().name;
        self.require(&Object::Relation(name.clone()), privilege)?;
        if let Entry::Source(source) = target {
            let topic = Object::Topic(source.topic.clone());
            let owner = self
                .catalog
                .privileges
                .acl(&Object::Relation(name.clone()))
                .owner;
            if !self
                .catalog
                .privileges
                .has(&self.catalog.roles, &owner, &topic, Privilege::Insert)
            {
                return Err(
                    privileges::denied(ObjectKind::Topic, &source.topic).with_detail(format!(
                        "source {name} appends to it as its owner {owner}, who may not"
                    )),
                );
            }
        }
        Ok(())
    }

    /// Drop or rename a role: refused while the role owns objects or holds privileges (as in
    /// Postgres); a rename carries them over.
    pub(super) fn check_role_change(&self, statement: &RoleStatement) -> Result<()> {
        let RoleStatement::Drop { names, .. } = statement else {
            return Ok(());
        };
        for name in names {
            let held = self.catalog.privileges.held_by(name);
            if held.is_empty() {
                continue;
            }
            let lines: Vec<String> = held
                .iter()
                .map(|(owns, object)| {
                    let (kind, object_name) = self
                        .kind_of(object)
                        .unwrap_or((ObjectKind::Table, String::new()));
                    let what = if *owns { "owner of" } else { "privileges for" };
                    format!("{what} {} {object_name}", kind.noun())
                })
                .collect();
            return Err(WeirError::new(
                ErrorKind::DependentObjects,
                format!("role \"{name}\" cannot be dropped because some objects depend on it"),
            )
            .with_detail(lines.join("\n"))
            .with_hint(
                "give its objects away (REASSIGN OWNED BY ... TO ...) or drop them and its \
                 privileges (DROP OWNED BY ...) first",
            ));
        }
        Ok(())
    }

    /// The role (or PUBLIC) a GRANT names.
    fn grantee(&self, grantee: &Grantee) -> Result<String> {
        match grantee {
            Grantee::Public => Ok(privileges::PUBLIC.to_string()),
            Grantee::CurrentUser => Ok(crate::auth::current_user().to_string()),
            Grantee::Role(name) => self.catalog.roles.require(name).map(|r| r.name),
        }
    }

    /// The role an ownership statement names (PUBLIC owns nothing).
    fn owner_role(&self, grantee: &Grantee) -> Result<String> {
        match grantee {
            Grantee::Public => Err(crate::auth::undefined(privileges::PUBLIC)),
            other => self.grantee(other),
        }
    }

    /// ALTER ... OWNER TO, REASSIGN OWNED and DROP OWNED, with Postgres's rules: the acting
    /// role must own the object (REASSIGN and DROP OWNED: have the rights of every old owner)
    /// and be a member of the new owner, unless it is a superuser.
    pub(super) async fn change_owner(&self, change: OwnerChange) -> Result<Output> {
        let acting = crate::auth::current_user();
        let roles = &self.catalog.roles;
        let may_give_to = |to: &str| {
            if roles.is_superuser(&acting) || roles.is_member_of(&acting, to) {
                Ok(())
            } else {
                Err(WeirError::new(
                    ErrorKind::InsufficientPrivilege,
                    format!("must be member of role \"{to}\""),
                ))
            }
        };
        let tag = change.tag();
        match change {
            OwnerChange::DropOwned { roles, cascade } => {
                return self.drop_owned(&roles, cascade).await;
            }
            OwnerChange::Alter { kind, name, to } => {
                let target = match kind {
                    Some(ObjectKind::Topic) => GrantTarget::Topics(vec![name]),
                    kind => GrantTarget::Relations {
                        kind,
                        names: vec![name],
                    },
                };
                let to = self.owner_role(&to)?;
                for (object, kind, name) in self.grant_objects(&target)? {
                    if !self.owns(&object) {
                        return Err(privileges::not_owner(kind, &name));
                    }
                    may_give_to(&to)?;
                    self.catalog.privileges.set_owner(object, &to)?;
                }
            }
            OwnerChange::Reassign { from, to } => {
                let from = from
                    .iter()
                    .map(|r| self.owner_role(r))
                    .collect::<Result<Vec<_>>>()?;
                let to = self.owner_role(&to)?;
                for old in &from {
                    if !roles.is_superuser(&acting) && !roles.has_privileges_of(&acting, old) {
                        return Err(WeirError::new(
                            ErrorKind::InsufficientPrivilege,
                            format!("permission denied to reassign objects owned by \"{old}\""),
                        ));
                    }
                }
                may_give_to(&to)?;
                self.catalog.privileges.reassign(&from, &to)?;
            }
        }
        Ok(Output::Done(Tag::new(tag)))
    }

    /// DROP OWNED BY: drops every relation and topic the roles own (newest first, so a view
    /// goes before what it reads; with `cascade`, dependents owned by others go too) and takes
    /// back what they were granted. The acting role must have the rights of each.
    async fn drop_owned(&self, roles: &[Grantee], cascade: bool) -> Result<Output> {
        let acting = crate::auth::current_user();
        let names = roles
            .iter()
            .map(|r| self.owner_role(r))
            .collect::<Result<Vec<_>>>()?;
        let catalog_roles = &self.catalog.roles;
        for role in &names {
            if !catalog_roles.is_superuser(&acting)
                && !catalog_roles.has_privileges_of(&acting, role)
            {
                return Err(WeirError::new(
                    ErrorKind::InsufficientPrivilege,
                    format!("permission denied to drop objects owned by \"{role}\""),
                ));
            }
        }
        let mut relations = Vec::new();
        let mut topics = Vec::new();
        for role in &names {
            for (owns, object) in self.catalog.privileges.held_by(role) {
                match object {
                    Object::Relation(name) if owns => {
                        if let Some(entry) = self.catalog.get(&name) {
                            relations.push((entry.item().id, entry.item().kind, name));
                        }
                    }
                    Object::Topic(name) if owns => topics.push(name),
                    _ => {}
                }
            }
        }
        relations.sort_by(|a, b| b.0.cmp(&a.0));
        for (_, kind, name) in relations {
            if self.catalog.get(&name).is_some() {
                self.drop_relations(kind, &[name], true, cascade).await?;
            }
        }
        for topic in topics {
            if self.topics.topic(&topic).is_some() {
                self.drop_topic(&topic, true)?;
            }
        }
        for role in &names {
            self.catalog.privileges.revoke_all(role)?;
        }
        Ok(Output::Done(Tag::new("DROP OWNED")))
    }

    /// GRANT / REVOKE on objects: only their owners (and superusers) may.
    pub(super) fn grant(&self, statement: ObjectGrant) -> Result<Output> {
        let objects = self.grant_objects(&statement.target)?;
        let grantees = statement
            .grantees
            .iter()
            .map(|g| self.grantee(g))
            .collect::<Result<Vec<_>>>()?;
        for (object, kind, name) in &objects {
            if !self.owns(object) {
                return Err(privileges::not_owner(*kind, name));
            }
            let valid = Privilege::valid_on(*kind);
            let wanted = match &statement.privileges {
                None => valid.to_vec(),
                Some(wanted) => {
                    if let Some(bad) = wanted.iter().find(|p| !valid.contains(p)) {
                        return Err(WeirError::new(
                            ErrorKind::InvalidGrantOperation,
                            format!(
                                "invalid privilege type {} for {}",
                                bad.keyword(),
                                kind.noun()
                            ),
                        )
                        .with_hint(privileges_hint(*kind)));
                    }
                    wanted.clone()
                }
            };
            self.catalog
                .privileges
                .change(object.clone(), &wanted, &grantees, statement.grant)?;
        }
        Ok(Output::Done(Tag::new(if statement.grant {
            "GRANT"
        } else {
            "REVOKE"
        })))
    }

    /// The objects a GRANT names, each with its kind and name; unknown names are errors.
    fn grant_objects(&self, target: &GrantTarget) -> Result<Vec<(Object, ObjectKind, String)>> {
        let schema = |name: &str| {
            if name == SCHEMA_NAME {
                Ok(())
            } else {
                Err(WeirError::new(
                    ErrorKind::InvalidSchemaName,
                    format!("schema \"{name}\" does not exist"),
                ))
            }
        };
        match target {
            GrantTarget::Relations { kind, names } => names
                .iter()
                .map(|name| {
                    let entry = self
                        .catalog
                        .get(name)
                        .ok_or_else(|| WeirError::undefined_table(name))?;
                    let found = ObjectKind::of(entry.item().kind);
                    if kind.is_some_and(|k| k != found) {
                        return Err(WeirError::new(
                            ErrorKind::WrongObjectType,
                            format!("\"{name}\" is not a {}", kind.unwrap_or(found).noun()),
                        ));
                    }
                    Ok((Object::Relation(name.clone()), found, name.clone()))
                })
                .collect(),
            GrantTarget::AllRelations { schema: s } => {
                schema(s)?;
                Ok(self
                    .catalog
                    .entries()
                    .iter()
                    .map(|e| {
                        let name = e.item().name.clone();
                        (
                            Object::Relation(name.clone()),
                            ObjectKind::of(e.item().kind),
                            name,
                        )
                    })
                    .collect())
            }
            GrantTarget::Topics(names) => names
                .iter()
                .map(|name| {
                    if self.topics.topic(name).is_none()
                        || name.starts_with(crate::kafka::INTERNAL_TOPIC_PREFIX)
                    {
                        return Err(WeirError::new(
                            ErrorKind::UndefinedObject,
                            format!("topic \"{name}\" does not exist"),
                        ));
                    }
                    Ok((Object::Topic(name.clone()), ObjectKind::Topic, name.clone()))
                })
                .collect(),
            GrantTarget::Database {
                schema: is_schema,
                name,
            } => {
                if *is_schema {
                    schema(name)?;
                } else if name != DATABASE_NAME {
                    return Err(WeirError::new(
                        ErrorKind::InvalidCatalogName,
                        format!("database \"{name}\" does not exist"),
                    ));
                }
                Ok(vec![(
                    Object::Database,
                    ObjectKind::Database,
                    DATABASE_NAME.to_string(),
                )])
            }
        }
    }
}

fn privileges_hint(kind: ObjectKind) -> String {
    let valid = Privilege::valid_on(kind);
    if valid.is_empty() {
        return format!(
            "a {} has no privileges to grant: only its owner may drop it",
            kind.noun()
        );
    }
    let words: Vec<&str> = valid.iter().map(|p| p.keyword()).collect();
    format!("a {} takes {}", kind.noun(), words.join(", "))
}

/// The names of the `public` relations `plan` scans, subqueries included. Expressions are
/// walked with a stack of their own, not by recursion: a statement may nest expressions up to
/// `sql::depth::STATEMENT_NESTING_MAX` levels, deeper than a recursive walk's frames fit.
fn relations_read(plan: &LogicalPlan, names: &mut Vec<String>) -> Result<()> {
    if let LogicalPlan::TableScan(scan) = plan
        && scan.table_name.schema().is_none_or(|s| s == SCHEMA_NAME)
    {
        names.push(scan.table_name.table().to_string());
    }
    let mut subqueries: Vec<Arc<LogicalPlan>> = Vec::new();
    plan.apply_expressions(|expr| {
        let mut pending = vec![expr];
        while let Some(e) = pending.pop() {
            match e {
                Expr::ScalarSubquery(s) => subqueries.push(s.subquery.clone()),
                Expr::Exists(e) => subqueries.push(e.subquery.subquery.clone()),
                Expr::InSubquery(e) => subqueries.push(e.subquery.subquery.clone()),
                _ => {}
            }
            e.apply_children(|child| {
                pending.push(child);
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    for subquery in &subqueries {
        relations_read(subquery, names)?;
    }
    for input in plan.inputs() {
        relations_read(input, names)?;
    }
    Ok(())
}
