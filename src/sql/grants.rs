//! Parsing of GRANT / REVOKE on objects: Postgres's grammar (`GRANT SELECT, INSERT ON [TABLE]
//! t TO alice`, `ON ALL TABLES IN SCHEMA public`, `CREATE ON DATABASE weir` or `ON SCHEMA
//! public`) plus Weir's object kinds (`ON TOPIC`, `ON SOURCE`, `ON MATERIALIZED VIEW`, `ON
//! SINK`); and of the ownership statements, `ALTER TABLE | SOURCE | MATERIALIZED VIEW | SINK |
//! TOPIC name OWNER TO role`, `REASSIGN OWNED BY roles TO role` and `DROP OWNED BY roles`. Role membership (`GRANT
//! role TO role`) is `sql::roles`; executing these is `db::access`.

use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use super::parse::{ident, syntax_near, word_at};
use crate::auth::privileges::{ObjectKind, Privilege};
use crate::error::{Result, WeirError};

#[derive(Debug, Clone, PartialEq)]
pub struct ObjectGrant {
    /// false: REVOKE.
    pub grant: bool,
    /// None: ALL [PRIVILEGES] (every privilege the objects take).
    pub privileges: Option<Vec<Privilege>>,
    pub target: GrantTarget,
    pub grantees: Vec<Grantee>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum GrantTarget {
    /// `ON [TABLE] a, b` (any relation: Postgres's TABLE covers views too), or `ON SOURCE`,
    /// `ON MATERIALIZED VIEW`, `ON SINK` (the objects must be of that kind).
    Relations {
        kind: Option<ObjectKind>,
        names: Vec<String>,
    },
    /// `ON ALL TABLES IN SCHEMA public`: every relation that exists now.
    AllRelations {
        schema: String,
    },
    Topics(Vec<String>),
    /// `ON DATABASE name` or `ON SCHEMA name`: where objects are created.
    Database {
        schema: bool,
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Grantee {
    Public,
    /// CURRENT_USER, SESSION_USER or CURRENT_ROLE: the session's role.
    CurrentUser,
    Role(String),
}

/// A change of owner.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnerChange {
    /// `ALTER <kind> name OWNER TO role`; `kind` None for TABLE (any relation), as GRANT's.
    Alter {
        kind: Option<ObjectKind>,
        name: String,
        to: Grantee,
    },
    /// `REASSIGN OWNED BY roles TO role`: everything those roles own.
    Reassign { from: Vec<Grantee>, to: Grantee },
    /// `DROP OWNED BY roles [CASCADE]`: drops everything those roles own and revokes what they
    /// were granted.
    DropOwned { roles: Vec<Grantee>, cascade: bool },
}

impl OwnerChange {
    /// The command tag.
    pub fn tag(&self) -> &'static str {
        match self {
            OwnerChange::Alter { kind, .. } => match kind {
                None | Some(ObjectKind::Table) => "ALTER TABLE",
                Some(ObjectKind::Source) => "ALTER SOURCE",
                Some(ObjectKind::MaterializedView) => "ALTER MATERIALIZED VIEW",
                Some(ObjectKind::Sink) => "ALTER SINK",
                Some(ObjectKind::Topic) => "ALTER TOPIC",
                Some(ObjectKind::Database) => "ALTER DATABASE",
            },
            OwnerChange::Reassign { .. } => "REASSIGN OWNED",
            OwnerChange::DropOwned { .. } => "DROP OWNED",
        }
    }
}

/// Whether the statement at the parser's position changes an owner: `REASSIGN OWNED`, or an
/// ALTER of a relation or topic whose next words after the name are `OWNER TO`.
pub fn starts_owner_change(parser: &Parser) -> bool {
    match (word_at(parser, 0).as_deref(), word_at(parser, 1).as_deref()) {
        (Some("REASSIGN" | "DROP"), Some("OWNED")) => true,
        (Some("ALTER"), Some("TABLE" | "SOURCE" | "SINK" | "TOPIC" | "VIEW")) => {
            owner_to_at(parser, 3)
        }
        (Some("ALTER"), Some("MATERIALIZED")) => owner_to_at(parser, 4),
        _ => false,
    }
}

fn owner_to_at(parser: &Parser, n: usize) -> bool {
    word_at(parser, n).as_deref() == Some("OWNER")
        && word_at(parser, n + 1).as_deref() == Some("TO")
}

/// Parses the statement [`starts_owner_change`] recognised.
pub fn parse_owner_change(parser: &mut Parser) -> Result<OwnerChange> {
    if words(parser, &["DROP", "OWNED", "BY"]) {
        let mut roles = vec![grantee(parser)?];
        while parser.consume_token(&Token::Comma) {
            roles.push(grantee(parser)?);
        }
        let cascade = words(parser, &["CASCADE"]);
        if !cascade {
            words(parser, &["RESTRICT"]);
        }
        return Ok(OwnerChange::DropOwned { roles, cascade });
    }
    if words(parser, &["REASSIGN", "OWNED", "BY"]) {
        let mut from = vec![grantee(parser)?];
        while parser.consume_token(&Token::Comma) {
            from.push(grantee(parser)?);
        }
        expect(parser, "TO")?;
        return Ok(OwnerChange::Reassign {
            from,
            to: grantee(parser)?,
        });
    }
    expect(parser, "ALTER")?;
    let kind = if words(parser, &["MATERIALIZED", "VIEW"]) || words(parser, &["VIEW"]) {
        Some(ObjectKind::MaterializedView)
    } else if words(parser, &["SOURCE"]) {
        Some(ObjectKind::Source)
    } else if words(parser, &["SINK"]) {
        Some(ObjectKind::Sink)
    } else if words(parser, &["TOPIC"]) {
        Some(ObjectKind::Topic)
    } else {
        expect(parser, "TABLE")?;
        None
    };
    let name = ident(parser)?;
    expect(parser, "OWNER")?;
    expect(parser, "TO")?;
    Ok(OwnerChange::Alter {
        kind,
        name,
        to: grantee(parser)?,
    })
}

/// Whether the GRANT / REVOKE at the parser's position names objects (`... ON t TO ...`)
/// rather than roles.
pub fn starts_object_grant(parser: &Parser) -> bool {
    matches!(word_at(parser, 0).as_deref(), Some("GRANT" | "REVOKE")) && names_an_object(parser)
}

fn names_an_object(parser: &Parser) -> bool {
    for n in 1.. {
        match parser.peek_nth_token(n).token {
            Token::EOF | Token::SemiColon => return false,
            Token::Word(w) if w.quote_style.is_none() => {
                match w.value.to_ascii_uppercase().as_str() {
                    "TO" | "FROM" => return false,
                    "ON" => return true,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    false
}

/// Privilege words Postgres has and Weir does not.
const UNSUPPORTED_PRIVILEGES: &[&str] = &[
    "TRUNCATE",
    "REFERENCES",
    "TRIGGER",
    "USAGE",
    "CONNECT",
    "TEMPORARY",
    "TEMP",
    "EXECUTE",
    "MAINTAIN",
    "SET",
];

/// Parses the statement at the parser's position ([`starts_object_grant`] said it is one).
pub fn parse(parser: &mut Parser) -> Result<ObjectGrant> {
    let grant = word_at(parser, 0).as_deref() == Some("GRANT");
    parser.next_token();
    if !grant && words(parser, &["GRANT", "OPTION", "FOR"]) {
        return Err(WeirError::unsupported(
            "grant options are not supported: only owners and superusers grant",
        ));
    }
    let privileges = privileges(parser)?;
    expect(parser, "ON")?;
    let target = target(parser)?;
    expect(parser, if grant { "TO" } else { "FROM" })?;
    let mut grantees = vec![grantee(parser)?];
    while parser.consume_token(&Token::Comma) {
        grantees.push(grantee(parser)?);
    }
    if grant && words(parser, &["WITH", "GRANT", "OPTION"]) {
        return Err(WeirError::unsupported(
            "WITH GRANT OPTION is not supported: only owners and superusers grant",
        ));
    }
    if words(parser, &["GRANTED", "BY"]) {
        return Err(WeirError::unsupported("GRANTED BY is not supported"));
    }
    if !grant && !words(parser, &["CASCADE"]) {
        words(parser, &["RESTRICT"]);
    }
    Ok(ObjectGrant {
        grant,
        privileges,
        target,
        grantees,
    })
}

fn privileges(parser: &mut Parser) -> Result<Option<Vec<Privilege>>> {
    if words(parser, &["ALL"]) {
        words(parser, &["PRIVILEGES"]);
        return Ok(None);
    }
    let mut out = Vec::new();
    loop {
        let word = word_at(parser, 0).unwrap_or_default();
        if let Some(p) = Privilege::from_keyword(&word) {
            parser.next_token();
            if parser.peek_token().token == Token::LParen {
                return Err(WeirError::unsupported(
                    "column privileges are not supported: grant on the whole relation",
                ));
            }
            if !out.contains(&p) {
                out.push(p);
            }
        } else if UNSUPPORTED_PRIVILEGES.contains(&word.as_str()) {
            return Err(WeirError::unsupported(format!(
                "privilege {word} is not supported (Weir has SELECT, INSERT, UPDATE, DELETE and \
                 CREATE)"
            )));
        } else {
            return Err(syntax_near(parser));
        }
        if !parser.consume_token(&Token::Comma) {
            return Ok(Some(out));
        }
    }
}

fn target(parser: &mut Parser) -> Result<GrantTarget> {
    let first = word_at(parser, 0).unwrap_or_default();
    let second = word_at(parser, 1).unwrap_or_default();
    let (kind, skip) = match (first.as_str(), second.as_str()) {
        ("ALL", "TABLES") => {
            parser.next_token();
            parser.next_token();
            expect(parser, "IN")?;
            expect(parser, "SCHEMA")?;
            return Ok(GrantTarget::AllRelations {
                schema: ident(parser)?,
            });
        }
        ("DATABASE" | "SCHEMA", _) => {
            parser.next_token();
            return Ok(GrantTarget::Database {
                schema: first == "SCHEMA",
                name: ident(parser)?,
            });
        }
        ("TOPIC", _) => {
            parser.next_token();
            return Ok(GrantTarget::Topics(names(parser)?));
        }
        ("TABLE", _) => (None, 1),
        ("SOURCE", _) => (Some(ObjectKind::Source), 1),
        ("SINK", _) => (Some(ObjectKind::Sink), 1),
        ("MATERIALIZED", "VIEW") => (Some(ObjectKind::MaterializedView), 2),
        ("VIEW", _) => (Some(ObjectKind::MaterializedView), 1),
        (
            "SEQUENCE" | "FUNCTION" | "PROCEDURE" | "ROUTINE" | "TYPE" | "DOMAIN" | "LANGUAGE"
            | "TABLESPACE" | "FOREIGN" | "LARGE",
            _,
        ) => {
            return Err(WeirError::unsupported(format!(
                "GRANT ON {first} is not supported: Weir grants on tables, sources, materialized \
                 views, sinks, topics and the database"
            )));
        }
        _ => (None, 0),
    };
    for _ in 0..skip {
        parser.next_token();
    }
    Ok(GrantTarget::Relations {
        kind,
        names: names(parser)?,
    })
}

fn names(parser: &mut Parser) -> Result<Vec<String>> {
    let mut names = vec![ident(parser)?];
    while parser.consume_token(&Token::Comma) {
        names.push(ident(parser)?);
    }
    Ok(names)
}

fn grantee(parser: &mut Parser) -> Result<Grantee> {
    if let Token::Word(w) = &parser.peek_token().token
        && w.quote_style.is_none()
    {
        let special = match w.value.to_ascii_uppercase().as_str() {
            "PUBLIC" => Some(Grantee::Public),
            "CURRENT_USER" | "SESSION_USER" | "CURRENT_ROLE" => Some(Grantee::CurrentUser),
            _ => None,
        };
        if let Some(special) = special {
            parser.next_token();
            return Ok(special);
        }
    }
    words(parser, &["GROUP"]);
    Ok(Grantee::Role(ident(parser)?))
}

/// Consumes `expected` (unquoted words, any case) when they come next; false (and nothing
/// consumed) otherwise.
fn words(parser: &mut Parser, expected: &[&str]) -> bool {
    let matches = expected.iter().enumerate().all(|(n, e)| {
        matches!(&parser.peek_nth_token(n).token,
            Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(e))
    });
    if matches {
        for _ in expected {
            parser.next_token();
        }
    }
    matches
}

fn expect(parser: &mut Parser, word: &str) -> Result<()> {
    if words(parser, &[word]) {
        Ok(())
    } else {
        Err(syntax_near(parser))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parse::{Statement, parse};

    fn grant(sql: &str) -> ObjectGrant {
        match parse(sql).unwrap().pop().unwrap() {
            Statement::Grant(g) => g,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn grants_and_revokes_parse_as_postgres_writes_them() {
        let g = grant("GRANT SELECT, insert ON TABLE a, \"B\" TO alice, PUBLIC");
        assert!(g.grant);
        assert_eq!(
            g.privileges,
            Some(vec![Privilege::Select, Privilege::Insert])
        );
        assert_eq!(
            g.target,
            GrantTarget::Relations {
                kind: None,
                names: vec!["a".into(), "B".into()]
            }
        );
        assert_eq!(g.grantees, [Grantee::Role("alice".into()), Grantee::Public]);
        let g = grant("REVOKE ALL PRIVILEGES ON TOPIC clicks FROM current_user CASCADE");
        assert!(!g.grant && g.privileges.is_none());
        assert_eq!(g.target, GrantTarget::Topics(vec!["clicks".into()]));
        assert_eq!(g.grantees, [Grantee::CurrentUser]);
        assert_eq!(
            grant("GRANT CREATE ON SCHEMA public TO bob").target,
            GrantTarget::Database {
                schema: true,
                name: "public".into()
            }
        );
        assert_eq!(
            grant("GRANT SELECT ON ALL TABLES IN SCHEMA public TO bob").target,
            GrantTarget::AllRelations {
                schema: "public".into()
            }
        );
        assert_eq!(
            grant("GRANT SELECT ON MATERIALIZED VIEW v TO bob").target,
            GrantTarget::Relations {
                kind: Some(ObjectKind::MaterializedView),
                names: vec!["v".into()]
            }
        );
    }

    #[test]
    fn owner_changes_parse() {
        let owner = |sql: &str| match parse(sql).unwrap().pop().unwrap() {
            Statement::Owner(o) => o,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            owner("ALTER MATERIALIZED VIEW v OWNER TO bob"),
            OwnerChange::Alter {
                kind: Some(ObjectKind::MaterializedView),
                name: "v".into(),
                to: Grantee::Role("bob".into())
            }
        );
        assert_eq!(
            owner("alter table t owner to current_user").tag(),
            "ALTER TABLE"
        );
        assert_eq!(
            owner("DROP OWNED BY a CASCADE"),
            OwnerChange::DropOwned {
                roles: vec![Grantee::Role("a".into())],
                cascade: true
            }
        );
        assert_eq!(
            owner("REASSIGN OWNED BY a, b TO c"),
            OwnerChange::Reassign {
                from: vec![Grantee::Role("a".into()), Grantee::Role("b".into())],
                to: Grantee::Role("c".into())
            }
        );
    }

    #[test]
    fn what_weir_does_not_have_is_refused_clearly() {
        let code = |sql: &str| parse(sql).unwrap_err().kind.sqlstate();
        assert_eq!(code("GRANT SELECT ON t TO a WITH GRANT OPTION"), "0A000");
        assert_eq!(code("REVOKE GRANT OPTION FOR SELECT ON t FROM a"), "0A000");
        assert_eq!(code("GRANT SELECT (x) ON t TO a"), "0A000");
        assert_eq!(code("GRANT TRUNCATE ON t TO a"), "0A000");
        assert_eq!(code("GRANT USAGE ON SEQUENCE s TO a"), "0A000");
        assert_eq!(code("GRANT FROB ON t TO a"), "42601");
        assert_eq!(code("GRANT SELECT ON t alice"), "42601");
    }
}
