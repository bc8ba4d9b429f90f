//! Parsing of the role statements, with Postgres's grammar: CREATE / ALTER / DROP ROLE and
//! USER, `ALTER ROLE ... RENAME TO`, and role membership (`GRANT role TO role`, `REVOKE role
//! FROM role`). sqlparser's CREATE USER is Snowflake's and its GRANT does not take role names,
//! so these are parsed here; executing them is `auth::ddl`.

use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use super::parse::{ident, syntax, word_at};
use crate::error::{ErrorKind, Result, WeirError};

#[derive(Debug, Clone, PartialEq)]
pub enum RoleStatement {
    /// CREATE ROLE, or CREATE USER (`login` true: a user may log in unless NOLOGIN says not).
    Create {
        name: String,
        options: Vec<RoleOption>,
        login: bool,
    },
    Alter {
        name: String,
        options: Vec<RoleOption>,
    },
    Rename {
        name: String,
        to: String,
    },
    Drop {
        names: Vec<String>,
        if_exists: bool,
    },
    /// GRANT roles TO members (`grant` false: REVOKE roles FROM members).
    Membership {
        grant: bool,
        roles: Vec<String>,
        members: Vec<String>,
    },
}

/// One option of CREATE / ALTER ROLE.
#[derive(Debug, Clone, PartialEq)]
pub enum RoleOption {
    Superuser(bool),
    Login(bool),
    Inherit(bool),
    CreateRole(bool),
    CreateDb(bool),
    /// -1: no limit.
    ConnectionLimit(i32),
    /// The password as given (a plain password or a SCRAM verifier); None: PASSWORD NULL.
    Password(Option<String>),
    /// IN ROLE / IN GROUP: the new role becomes a member of these.
    InRole(Vec<String>),
    /// ROLE / USER: these become members of the new role.
    Members(Vec<String>),
}

impl RoleOption {
    /// Options that must not be given twice are compared by kind.
    fn kind(&self) -> std::mem::Discriminant<RoleOption> {
        std::mem::discriminant(self)
    }
}

/// Whether the statement starting at the parser's position is one of these (the first two
/// words decide; for GRANT / REVOKE, whether an `ON` comes before `TO` / `FROM`).
pub fn starts_role_statement(parser: &Parser) -> bool {
    let first = word_at(parser, 0);
    let second = word_at(parser, 1);
    match (first.as_deref(), second.as_deref()) {
        (Some("CREATE" | "ALTER" | "DROP"), Some("ROLE" | "USER" | "GROUP")) => true,
        (Some("GRANT" | "REVOKE"), _) => !super::grants::starts_object_grant(parser),
        _ => false,
    }
}

/// Parses the role statement at the parser's position ([`starts_role_statement`] said it is one).
pub fn parse(parser: &mut Parser) -> Result<RoleStatement> {
    let verb = word_at(parser, 0).unwrap_or_default();
    parser.next_token();
    match verb.as_str() {
        "GRANT" | "REVOKE" => membership(parser, verb == "GRANT"),
        _ => {
            let noun = word_at(parser, 0).unwrap_or_default();
            parser.next_token();
            match verb.as_str() {
                "CREATE" => {
                    let name = ident(parser)?;
                    let options = options(parser)?;
                    Ok(RoleStatement::Create {
                        name,
                        options,
                        login: noun == "USER",
                    })
                }
                "ALTER" => {
                    let name = ident(parser)?;
                    if parser.parse_keywords(&[Keyword::RENAME, Keyword::TO]) {
                        let to = ident(parser)?;
                        return Ok(RoleStatement::Rename { name, to });
                    }
                    let options = options(parser)?;
                    for option in &options {
                        if matches!(option, RoleOption::InRole(_) | RoleOption::Members(_)) {
                            return Err(WeirError::syntax(
                                "ALTER ROLE does not take IN ROLE or ROLE; use GRANT / REVOKE",
                            ));
                        }
                    }
                    Ok(RoleStatement::Alter { name, options })
                }
                _ => {
                    let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
                    let names = names(parser)?;
                    Ok(RoleStatement::Drop { names, if_exists })
                }
            }
        }
    }
}

fn membership(parser: &mut Parser, grant: bool) -> Result<RoleStatement> {
    if !grant && parser.parse_keywords(&[Keyword::ADMIN, Keyword::OPTION, Keyword::FOR]) {
        return Err(admin_option());
    }
    let roles = names(parser)?;
    let keyword = if grant { Keyword::TO } else { Keyword::FROM };
    parser.expect_keyword_is(keyword).map_err(syntax)?;
    let members = names(parser)?;
    if grant && parser.parse_keywords(&[Keyword::WITH, Keyword::ADMIN]) {
        return Err(admin_option());
    }
    let _ = parser.parse_keyword(Keyword::RESTRICT);
    Ok(RoleStatement::Membership {
        grant,
        roles,
        members,
    })
}

fn admin_option() -> WeirError {
    WeirError::unsupported("ADMIN OPTION on role membership is not supported")
        .with_hint("superusers and CREATEROLE roles manage every membership")
}

fn names(parser: &mut Parser) -> Result<Vec<String>> {
    let mut names = vec![ident(parser)?];
    while parser.consume_token(&Token::Comma) {
        names.push(ident(parser)?);
    }
    Ok(names)
}

/// `[WITH] option ...`, each kind at most once.
fn options(parser: &mut Parser) -> Result<Vec<RoleOption>> {
    let _ = parser.parse_keyword(Keyword::WITH);
    let mut options: Vec<RoleOption> = Vec::new();
    while let Some(word) = word_at(parser, 0) {
        parser.next_token();
        let flag = |yes: bool, make: fn(bool) -> RoleOption| make(yes);
        let option = match word.as_str() {
            "SUPERUSER" => flag(true, RoleOption::Superuser),
            "NOSUPERUSER" => flag(false, RoleOption::Superuser),
            "LOGIN" => flag(true, RoleOption::Login),
            "NOLOGIN" => flag(false, RoleOption::Login),
            "INHERIT" => flag(true, RoleOption::Inherit),
            "NOINHERIT" => flag(false, RoleOption::Inherit),
            "CREATEROLE" => flag(true, RoleOption::CreateRole),
            "NOCREATEROLE" => flag(false, RoleOption::CreateRole),
            "CREATEDB" => flag(true, RoleOption::CreateDb),
            "NOCREATEDB" => flag(false, RoleOption::CreateDb),
            "CONNECTION" => {
                parser.expect_keyword_is(Keyword::LIMIT).map_err(syntax)?;
                RoleOption::ConnectionLimit(connection_limit(parser)?)
            }
            "ENCRYPTED" | "PASSWORD" => {
                if word == "ENCRYPTED" {
                    parser
                        .expect_keyword_is(Keyword::PASSWORD)
                        .map_err(syntax)?;
                }
                match parser.next_token().token {
                    Token::SingleQuotedString(s) => RoleOption::Password(Some(s)),
                    Token::Word(w) if w.keyword == Keyword::NULL => RoleOption::Password(None),
                    other => {
                        return Err(WeirError::syntax(format!(
                            "syntax error at or near \"{other}\""
                        ))
                        .with_hint("PASSWORD takes a quoted string or NULL"));
                    }
                }
            }
            "IN" => {
                match word_at(parser, 0).as_deref() {
                    Some("ROLE" | "GROUP") => parser.next_token(),
                    _ => return Err(WeirError::syntax("expected ROLE after IN")),
                };
                RoleOption::InRole(names(parser)?)
            }
            "ROLE" | "USER" => RoleOption::Members(names(parser)?),
            "REPLICATION" | "NOREPLICATION" | "BYPASSRLS" | "NOBYPASSRLS" | "VALID" | "ADMIN"
            | "SYSID" => {
                return Err(WeirError::unsupported(format!(
                    "role option {word} is not supported"
                )));
            }
            _ => {
                return Err(WeirError::syntax(format!(
                    "syntax error at or near \"{}\"",
                    word.to_ascii_lowercase()
                )));
            }
        };
        if options.iter().any(|o| o.kind() == option.kind()) {
            return Err(WeirError::new(
                ErrorKind::Syntax,
                "conflicting or redundant options",
            ));
        }
        options.push(option);
    }
    Ok(options)
}

fn connection_limit(parser: &mut Parser) -> Result<i32> {
    let negative = parser.consume_token(&Token::Minus);
    let value = match parser.next_token().token {
        Token::Number(n, _) => n.parse::<i32>().ok(),
        _ => None,
    };
    match value.map(|v| if negative { -v } else { v }) {
        Some(limit) if limit >= -1 => Ok(limit),
        _ => Err(
            WeirError::new(ErrorKind::InvalidParameter, "invalid connection limit")
                .with_hint("CONNECTION LIMIT takes a whole number, or -1 for no limit"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parse::{Statement, parse as parse_sql};

    fn role(sql: &str) -> RoleStatement {
        match parse_sql(sql).unwrap().pop().unwrap() {
            Statement::Role(r) => r,
            other => panic!("{sql}: {other:?}"),
        }
    }

    #[test]
    fn role_statements_parse_as_postgres_writes_them() {
        assert_eq!(
            role("CREATE USER Alice WITH PASSWORD 'pw' CONNECTION LIMIT 3 IN ROLE admins"),
            RoleStatement::Create {
                name: "alice".into(),
                options: vec![
                    RoleOption::Password(Some("pw".into())),
                    RoleOption::ConnectionLimit(3),
                    RoleOption::InRole(vec!["admins".into()]),
                ],
                login: true,
            }
        );
        assert_eq!(
            role("create role \"Ops\" nologin superuser"),
            RoleStatement::Create {
                name: "Ops".into(),
                options: vec![RoleOption::Login(false), RoleOption::Superuser(true)],
                login: false,
            }
        );
        assert_eq!(
            role("ALTER ROLE bob PASSWORD NULL"),
            RoleStatement::Alter {
                name: "bob".into(),
                options: vec![RoleOption::Password(None)],
            }
        );
        assert_eq!(
            role("ALTER USER bob RENAME TO rob"),
            RoleStatement::Rename {
                name: "bob".into(),
                to: "rob".into()
            }
        );
        assert_eq!(
            role("DROP ROLE IF EXISTS a, b"),
            RoleStatement::Drop {
                names: vec!["a".into(), "b".into()],
                if_exists: true
            }
        );
        assert_eq!(
            role("GRANT admins, readers TO alice"),
            RoleStatement::Membership {
                grant: true,
                roles: vec!["admins".into(), "readers".into()],
                members: vec!["alice".into()],
            }
        );
        assert_eq!(
            role("REVOKE admins FROM alice"),
            RoleStatement::Membership {
                grant: false,
                roles: vec!["admins".into()],
                members: vec!["alice".into()],
            }
        );
    }

    #[test]
    fn object_grants_are_not_role_statements() {
        let stmt = parse_sql("GRANT SELECT ON t TO alice")
            .unwrap()
            .pop()
            .unwrap();
        assert!(!matches!(stmt, Statement::Role(_)), "{stmt:?}");
    }

    #[test]
    fn bad_role_statements_are_refused_clearly() {
        let code = |sql: &str| parse_sql(sql).unwrap_err().kind.sqlstate();
        assert_eq!(code("CREATE ROLE a LOGIN NOLOGIN"), "42601");
        assert_eq!(code("CREATE ROLE a CONNECTION LIMIT -2"), "22023");
        assert_eq!(code("CREATE ROLE a PASSWORD 3"), "42601");
        assert_eq!(code("CREATE ROLE a REPLICATION"), "0A000");
        assert_eq!(code("CREATE ROLE a FROBNICATE"), "42601");
        assert_eq!(code("ALTER ROLE a IN ROLE b"), "42601");
    }
}
