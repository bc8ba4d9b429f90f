//! Parsing: Postgres SQL through sqlparser (via DataFusion's re-export), plus Weir's own
//! statements (CREATE TOPIC / SOURCE, DROP TOPIC / SOURCE, SHOW TOPICS ..., FLUSH), which are
//! recognised by their leading keywords as tokens, never by guessing at the text.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::sql::sqlparser::ast::{self, ColumnOption};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

use super::event_time::{WatermarkDef, set_emit_on_window_close};
use crate::error::{ErrorKind, Result, WeirError};
use crate::formats::Format;
use crate::sources::generator::NexmarkOptions;

/// One parsed statement.
#[derive(Debug, Clone)]
pub enum Statement {
    CreateTopic {
        name: String,
        options: Vec<(String, String)>,
        if_not_exists: bool,
    },
    DropTopic {
        name: String,
        if_exists: bool,
    },
    CreateSource(CreateSource),
    CreateSink(CreateSink),
    DropSink {
        name: String,
        if_exists: bool,
    },
    DropSource {
        name: String,
        if_exists: bool,
        cascade: bool,
    },
    Show(ShowKind),
    Flush,
    /// CREATE / ALTER / DROP ROLE or USER, GRANT / REVOKE of role membership.
    Role(super::roles::RoleStatement),
    /// GRANT / REVOKE of privileges on objects.
    Grant(super::grants::ObjectGrant),
    /// ALTER ... OWNER TO, REASSIGN OWNED.
    Owner(super::grants::OwnerChange),
    /// Anything standard SQL: SELECT, INSERT, CREATE TABLE / MATERIALIZED VIEW, SET ...
    Standard(Box<ast::Statement>),
}

#[derive(Debug, Clone)]
pub struct CreateSource {
    pub name: String,
    pub columns: Vec<Column>,
    pub topic: Option<String>,
    pub format: Format,
    pub if_not_exists: bool,
    /// Set for a source whose events a connector generates (`WITH (connector = 'nexmark')`).
    pub generator: Option<NexmarkOptions>,
    /// `WATERMARK FOR col AS col - INTERVAL '...'` in the column list.
    pub watermark: Option<WatermarkDef>,
}

impl CreateSource {
    /// The statement as SQL again (what the catalog stores).
    pub fn to_sql(&self) -> String {
        if let Some(options) = &self.generator {
            return format!(
                "CREATE SOURCE {} WITH ({})",
                quote_ident(&self.name),
                options.to_sql()
            );
        }
        let mut cols: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{} {}", quote_ident(&c.name), c.sql_type))
            .collect();
        cols.extend(self.watermark.iter().map(|w| w.to_sql(quote_ident)));
        let topic = self
            .topic
            .as_ref()
            .map(|t| format!(" FROM TOPIC {}", quote_ident(t)))
            .unwrap_or_default();
        let format = match self.format {
            Format::Json => "JSON",
            Format::Csv => "CSV",
        };
        format!(
            "CREATE SOURCE {} ({}){topic} FORMAT {format}",
            quote_ident(&self.name),
            cols.join(", ")
        )
    }
}

/// `CREATE SINK name FROM view INTO TOPIC topic FORMAT JSON [WITH (mode = 'upsert')]`
#[derive(Debug, Clone)]
pub struct CreateSink {
    pub name: String,
    pub view: String,
    pub topic: String,
    pub upsert: bool,
    pub if_not_exists: bool,
}

impl CreateSink {
    pub fn to_sql(&self) -> String {
        let mode = if self.upsert {
            " WITH (mode = 'upsert')"
        } else {
            ""
        };
        format!(
            "CREATE SINK {} FROM {} INTO TOPIC {} FORMAT JSON{mode}",
            quote_ident(&self.name),
            quote_ident(&self.view),
            quote_ident(&self.topic)
        )
    }
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub data_type: DataType,
    /// The type as written, for error messages and stored SQL.
    pub sql_type: String,
    pub primary_key: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShowKind {
    Topics,
    Sources,
    Tables,
    MaterializedViews,
    Sinks,
}

/// Statements up to this length are parsed on the caller's stack, in bytes. A statement builds
/// at most one tree level per two bytes, and a refused tree must still be dropped (recursively):
/// this keeps the deepest refused tree well within a thread's stack.
const PARSE_ON_CALLER_STACK_BYTES_MAX: usize = 16 * 1024;
/// Stack given to the parse of a longer statement, per byte of its text.
const PARSE_STACK_BYTES_PER_SQL_BYTE: usize = 256;

/// Parses a query string holding one or more statements separated by semicolons, refusing any
/// that nests too deeply for the passes after it (see [`super::depth`]).
pub fn parse(sql: &str) -> Result<Vec<Statement>> {
    if sql.len() > crate::config::STATEMENT_BYTES_MAX {
        return Err(WeirError::new(
            ErrorKind::InvalidParameter,
            "statement is too long",
        ));
    }
    if sql.len() <= PARSE_ON_CALLER_STACK_BYTES_MAX {
        return parse_checked(sql);
    }
    // A long statement can build a tree deep enough that dropping it overflows an ordinary
    // stack, so it is parsed (and a refused tree dropped) on a thread with a stack sized to it.
    // The stack is reserved, not committed: only what the parse touches is used.
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("weir-parse".into())
            .stack_size(
                crate::config::THREAD_STACK_BYTES + sql.len() * PARSE_STACK_BYTES_PER_SQL_BYTE,
            )
            .spawn_scoped(scope, || parse_checked(sql))
            .map_err(|e| WeirError::io("starting the parser thread", e))?
            .join()
            .map_err(|panic| WeirError::from_panic(&*panic))?
    })
}

fn parse_checked(sql: &str) -> Result<Vec<Statement>> {
    let dialect = PostgreSqlDialect {};
    let mut parser = Parser::new(&dialect)
        .with_recursion_limit(super::depth::PARSE_NESTING_MAX)
        .try_with_sql(sql)
        .map_err(syntax)?;
    let mut out = Vec::new();
    loop {
        while parser.consume_token(&Token::SemiColon) {}
        if parser.peek_token().token == Token::EOF {
            break;
        }
        let statement = parse_one(&mut parser)?;
        if let Statement::Standard(standard) = &statement {
            super::depth::check(standard)?;
        }
        out.push(statement);
        if !parser.consume_token(&Token::SemiColon) && parser.peek_token().token != Token::EOF {
            return Err(syntax_near(&parser));
        }
    }
    Ok(out)
}

pub(crate) fn syntax(e: ParserError) -> WeirError {
    let text = match e {
        ParserError::ParserError(m) | ParserError::TokenizerError(m) => m,
        ParserError::RecursionLimitExceeded => return super::depth::too_deep(),
    };
    WeirError::syntax(text)
}

/// The upper-cased word at `n` tokens ahead, if it is a word.
/// 42601 `syntax error at or near "<the next token>"`, as Postgres words it.
pub(crate) fn syntax_near(parser: &Parser) -> WeirError {
    WeirError::syntax(format!(
        "syntax error at or near \"{}\"",
        parser.peek_token().token
    ))
}

pub(crate) fn word_at(parser: &Parser, n: usize) -> Option<String> {
    match parser.peek_nth_token(n).token {
        Token::Word(w) => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

fn parse_one(parser: &mut Parser) -> Result<Statement> {
    if super::grants::starts_object_grant(parser) {
        return super::grants::parse(parser).map(Statement::Grant);
    }
    if super::grants::starts_owner_change(parser) {
        return super::grants::parse_owner_change(parser).map(Statement::Owner);
    }
    if super::roles::starts_role_statement(parser) {
        return super::roles::parse(parser).map(Statement::Role);
    }
    let first = word_at(parser, 0);
    let second = word_at(parser, 1);
    match (first.as_deref(), second.as_deref()) {
        (Some("CREATE"), Some("TOPIC")) => {
            skip(parser, 2);
            let if_not_exists =
                parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
            let name = ident(parser)?;
            let options = if parser.parse_keyword(Keyword::WITH) {
                options(parser)?
            } else {
                vec![]
            };
            Ok(Statement::CreateTopic {
                name,
                options,
                if_not_exists,
            })
        }
        (Some("DROP"), Some("TOPIC")) => {
            skip(parser, 2);
            let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            Ok(Statement::DropTopic {
                name: ident(parser)?,
                if_exists,
            })
        }
        (Some("CREATE"), Some("SOURCE")) => {
            skip(parser, 2);
            create_source(parser).map(Statement::CreateSource)
        }
        (Some("DROP"), Some("SOURCE")) => {
            skip(parser, 2);
            let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            let name = ident(parser)?;
            let cascade = parser.parse_keyword(Keyword::CASCADE);
            if !cascade {
                let _ = parser.parse_keyword(Keyword::RESTRICT);
            }
            Ok(Statement::DropSource {
                name,
                if_exists,
                cascade,
            })
        }
        (Some("CREATE"), Some("SINK")) => {
            skip(parser, 2);
            create_sink(parser).map(Statement::CreateSink)
        }
        (Some("DROP"), Some("SINK")) => {
            skip(parser, 2);
            let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            Ok(Statement::DropSink {
                name: ident(parser)?,
                if_exists,
            })
        }
        (Some("FLUSH"), _) => {
            skip(parser, 1);
            Ok(Statement::Flush)
        }
        (Some("FETCH"), _) => {
            skip(parser, 1);
            fetch(parser)
        }
        (
            Some("SHOW"),
            Some(what @ ("TOPICS" | "SOURCES" | "TABLES" | "SINKS" | "MATERIALIZED")),
        ) => {
            skip(parser, 2);
            let kind = match what {
                "TOPICS" => ShowKind::Topics,
                "SOURCES" => ShowKind::Sources,
                "TABLES" => ShowKind::Tables,
                "SINKS" => ShowKind::Sinks,
                _ => {
                    if word_at(parser, 0).as_deref() != Some("VIEWS") {
                        return Err(WeirError::syntax("expected SHOW MATERIALIZED VIEWS"));
                    }
                    skip(parser, 1);
                    ShowKind::MaterializedViews
                }
            };
            Ok(Statement::Show(kind))
        }
        _ => {
            let mut stmt = parser.parse_statement().map_err(syntax)?;
            // `CREATE MATERIALIZED VIEW ... EMIT ON WINDOW CLOSE`, also under EXPLAIN.
            let view = match &mut stmt {
                ast::Statement::Explain { statement, .. } => match statement.as_mut() {
                    ast::Statement::CreateView(view) => Some(view),
                    _ => None,
                },
                ast::Statement::CreateView(view) => Some(view),
                _ => None,
            };
            let words = |words: &[&str]| {
                (0..words.len())
                    .map(|n| word_at(parser, n))
                    .eq(words.iter().map(|w| Some(w.to_string())))
            };
            if let Some(view) = view
                && view.materialized
            {
                if words(&["EMIT", "ON", "WINDOW", "CLOSE"]) {
                    skip(parser, 4);
                    set_emit_on_window_close(&mut view.options);
                } else if words(&["ON", "WINDOW", "CLOSE"]) && take_emit_alias(&mut view.query) {
                    // `FROM t EMIT ON WINDOW CLOSE`: sqlparser took EMIT for t's alias.
                    skip(parser, 3);
                    set_emit_on_window_close(&mut view.options);
                }
            }
            Ok(Statement::Standard(Box::new(stmt)))
        }
    }
}

/// Removes an unquoted alias `EMIT` from the query's last FROM relation; whether there was one.
fn take_emit_alias(query: &mut ast::Query) -> bool {
    let ast::SetExpr::Select(select) = query.body.as_mut() else {
        return false;
    };
    let Some(last) = select.from.last_mut() else {
        return false;
    };
    let factor = match last.joins.last_mut() {
        Some(join) => &mut join.relation,
        None => &mut last.relation,
    };
    let alias = match factor {
        ast::TableFactor::Table { alias, .. } | ast::TableFactor::Derived { alias, .. } => alias,
        _ => return false,
    };
    let is_emit = alias.as_ref().is_some_and(|a| {
        a.columns.is_empty()
            && a.name.quote_style.is_none()
            && a.name.value.eq_ignore_ascii_case("emit")
    });
    if is_emit {
        *alias = None;
    }
    is_emit
}

/// `FETCH [NEXT | ALL | n | FORWARD [n | ALL]] [FROM | IN] cursor` with Postgres' optional
/// parts (sqlparser wants a direction and FROM); backward directions are left to sqlparser,
/// which parses them for the cursor code to refuse.
fn fetch(parser: &mut Parser) -> Result<Statement> {
    use ast::FetchDirection as D;
    let number = |parser: &mut Parser| -> Result<Option<ast::ValueWithSpan>> {
        if matches!(parser.peek_token().token, Token::Number(..)) {
            return parser.parse_number_value().map(Some).map_err(syntax);
        }
        Ok(None)
    };
    let direction = match word_at(parser, 0).as_deref() {
        Some("NEXT") => {
            skip(parser, 1);
            D::Next
        }
        Some("ALL") => {
            skip(parser, 1);
            D::All
        }
        Some("FORWARD") => {
            skip(parser, 1);
            if parser.parse_keyword(Keyword::ALL) {
                D::ForwardAll
            } else {
                D::Forward {
                    limit: number(parser)?,
                }
            }
        }
        Some("PRIOR" | "FIRST" | "LAST" | "ABSOLUTE" | "RELATIVE" | "BACKWARD") => {
            parser.prev_token();
            return Ok(Statement::Standard(Box::new(
                parser.parse_fetch_statement().map_err(syntax)?,
            )));
        }
        _ => match number(parser)? {
            Some(limit) => D::Count { limit },
            None => D::Next,
        },
    };
    let position = if parser.parse_keyword(Keyword::IN) {
        ast::FetchPosition::In
    } else {
        let _ = parser.parse_keyword(Keyword::FROM);
        ast::FetchPosition::From
    };
    let name = parser.parse_identifier().map_err(syntax)?;
    Ok(Statement::Standard(Box::new(ast::Statement::Fetch {
        name,
        direction,
        position,
        into: None,
    })))
}

fn skip(parser: &mut Parser, n: usize) {
    for _ in 0..n {
        parser.next_token();
    }
}

pub(crate) fn ident(parser: &mut Parser) -> Result<String> {
    Ok(normalize_ident(&parser.parse_identifier().map_err(syntax)?))
}

/// Postgres folds unquoted identifiers to lower case.
pub fn normalize_ident(id: &ast::Ident) -> String {
    if id.quote_style.is_some() {
        id.value.clone()
    } else {
        id.value.to_ascii_lowercase()
    }
}

pub fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && !name.is_empty();
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// `( key = value [, ...] )` with literal values.
fn options(parser: &mut Parser) -> Result<Vec<(String, String)>> {
    parser.expect_token(&Token::LParen).map_err(syntax)?;
    let mut out = Vec::new();
    loop {
        let key = ident(parser)?;
        parser.expect_token(&Token::Eq).map_err(syntax)?;
        let value = match parser.next_token().token {
            Token::Number(n, _) => n,
            Token::SingleQuotedString(s) => s,
            Token::Word(w) => w.value,
            other => {
                return Err(WeirError::syntax(format!(
                    "expected a value for option {key}, found {other}"
                )));
            }
        };
        out.push((key, value));
        if parser.consume_token(&Token::RParen) {
            return Ok(out);
        }
        parser.expect_token(&Token::Comma).map_err(syntax)?;
    }
}

fn expect_word(parser: &mut Parser, word: &str) -> Result<()> {
    if word_at(parser, 0).as_deref() != Some(word) {
        let found = parser.peek_token();
        return Err(WeirError::syntax(format!(
            "expected {word}, found \"{}\"",
            found.token
        )));
    }
    skip(parser, 1);
    Ok(())
}

fn create_sink(parser: &mut Parser) -> Result<CreateSink> {
    let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = ident(parser)?;
    expect_word(parser, "FROM")?;
    let view = ident(parser)?;
    expect_word(parser, "INTO")?;
    expect_word(parser, "TOPIC")?;
    let topic = ident(parser)?;
    expect_word(parser, "FORMAT")?;
    if Format::parse(&ident(parser)?)? != Format::Json {
        return Err(WeirError::unsupported("sinks write FORMAT JSON only"));
    }
    let mut upsert = false;
    if parser.parse_keyword(Keyword::WITH) {
        for (key, value) in options(parser)? {
            match (key.as_str(), value.to_ascii_lowercase().as_str()) {
                ("mode", "upsert") => upsert = true,
                ("mode", "append") => upsert = false,
                _ => {
                    return Err(WeirError::new(
                        ErrorKind::InvalidParameter,
                        format!("unknown sink option {key} = '{value}'"),
                    )
                    .with_hint("supported: mode = 'append' | 'upsert'"));
                }
            }
        }
    }
    Ok(CreateSink {
        name,
        view,
        topic,
        upsert,
        if_not_exists,
    })
}

fn create_source(parser: &mut Parser) -> Result<CreateSource> {
    let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = ident(parser)?;
    if parser.parse_keyword(Keyword::WITH) {
        return generated_source(parser, name, if_not_exists);
    }
    let (defs, constraints, watermark) = source_columns(parser)?;
    refuse_source_constraints(&defs, &constraints)?;
    if defs.is_empty() {
        return Err(WeirError::syntax("a source needs a column list")
            .with_hint("CREATE SOURCE name (col TYPE, ...) FORMAT JSON"));
    }
    let columns = columns(&defs)?;
    let topic = if parser.parse_keyword(Keyword::FROM) {
        if word_at(parser, 0).as_deref() != Some("TOPIC") {
            return Err(WeirError::syntax("expected FROM TOPIC name"));
        }
        skip(parser, 1);
        Some(ident(parser)?)
    } else {
        None
    };
    if !parser.parse_keyword(Keyword::FORMAT) {
        return Err(WeirError::syntax("expected FORMAT JSON or FORMAT CSV"));
    }
    let format = Format::parse(&ident(parser)?)?;
    Ok(CreateSource {
        name,
        columns,
        topic,
        format,
        if_not_exists,
        generator: None,
        watermark,
    })
}

/// `CREATE SOURCE name WITH (connector = 'nexmark', ...)`: a source whose schema and events
/// come from its connector.
fn generated_source(
    parser: &mut Parser,
    name: String,
    if_not_exists: bool,
) -> Result<CreateSource> {
    let options = options(parser)?;
    let connector = options
        .iter()
        .find(|(k, _)| k == "connector")
        .map(|(_, v)| v.to_ascii_lowercase());
    if connector.as_deref() != Some("nexmark") {
        return Err(WeirError::unsupported(match connector {
            Some(c) => format!("connector \"{c}\" is not supported"),
            None => "a source WITH (...) needs a connector".to_string(),
        })
        .with_hint("connector = 'nexmark' generates Nexmark events; for your own data, CREATE SOURCE name (col TYPE, ...) FORMAT JSON"));
    }
    let generator = NexmarkOptions::parse(&name, &options)?;
    let columns = generator
        .kind
        .columns()
        .iter()
        .map(|(col, sql_type)| {
            Ok(Column {
                name: col.to_string(),
                data_type: arrow_type(sql_type)?,
                sql_type: sql_type.to_string(),
                primary_key: false,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(CreateSource {
        name,
        columns,
        topic: None,
        format: Format::Json,
        if_not_exists,
        generator: Some(generator),
        // Each partition's events come in date_time order: no delay needed.
        watermark: Some(WatermarkDef {
            column: "date_time".to_string(),
            delay_micros: 0,
            delay_sql: None,
        }),
    })
}

/// Column definitions with their Arrow types.
pub fn columns(defs: &[ast::ColumnDef]) -> Result<Vec<Column>> {
    let mut out: Vec<Column> = Vec::new();
    for def in defs {
        let name = normalize_ident(&def.name);
        if out.iter().any(|c| c.name == name) {
            return Err(WeirError::new(
                ErrorKind::DuplicateColumn,
                format!("column \"{name}\" specified more than once"),
            ));
        }
        let sql_type = def.data_type.to_string();
        let primary_key = def
            .options
            .iter()
            .any(|o| matches!(o.option, ColumnOption::PrimaryKey(_)));
        out.push(Column {
            data_type: arrow_type(&sql_type)?,
            sql_type,
            name,
            primary_key,
        });
    }
    Ok(out)
}

/// A source's column list: column definitions, constraints (refused by the caller), and at
/// most one `WATERMARK FOR col AS expr` entry (Flink's syntax; see `sql::event_time`).
fn source_columns(
    parser: &mut Parser,
) -> Result<(
    Vec<ast::ColumnDef>,
    Vec<ast::TableConstraint>,
    Option<WatermarkDef>,
)> {
    let (mut defs, mut constraints, mut watermark) = (Vec::new(), Vec::new(), None);
    if !parser.consume_token(&Token::LParen) {
        return Ok((defs, constraints, watermark));
    }
    if parser.consume_token(&Token::RParen) {
        return Ok((defs, constraints, watermark));
    }
    loop {
        if word_at(parser, 0).as_deref() == Some("WATERMARK")
            && word_at(parser, 1).as_deref() == Some("FOR")
        {
            skip(parser, 2);
            let column = ident(parser)?;
            if !parser.parse_keyword(Keyword::AS) {
                return Err(WeirError::syntax(format!(
                    "expected AS after WATERMARK FOR {column}"
                )));
            }
            let expr = parser.parse_expr().map_err(syntax)?;
            if watermark.is_some() {
                return Err(WeirError::syntax("a source has at most one WATERMARK FOR"));
            }
            watermark = Some(WatermarkDef::new(column, &expr)?);
        } else if let Some(c) = parser.parse_optional_table_constraint().map_err(syntax)? {
            constraints.push(c);
        } else {
            defs.push(parser.parse_column_def().map_err(syntax)?);
        }
        if parser.consume_token(&Token::Comma) {
            continue;
        }
        if !parser.consume_token(&Token::RParen) {
            return Err(syntax_near(parser));
        }
        return Ok((defs, constraints, watermark));
    }
}

/// Refuses keys, constraints and column options on a source (0A000): a source is an
/// append-only log of records, and Weir would not enforce them.
fn refuse_source_constraints(
    defs: &[ast::ColumnDef],
    constraints: &[ast::TableConstraint],
) -> Result<()> {
    let option = defs.iter().flat_map(|d| &d.options).next();
    let what = match (constraints.first(), option) {
        (Some(c), _) => c.to_string(),
        (None, Some(o)) => o.option.to_string(),
        (None, None) => return Ok(()),
    };
    Err(WeirError::unsupported(format!(
        "{what} is not supported on a source: a source is an append-only log of records"
    ))
    .with_hint("for keyed rows that change use CREATE TABLE ... PRIMARY KEY"))
}

/// Arrow field metadata naming the Postgres type of a text column that is not plain text
/// (`json`, `jsonb`, `uuid`): stored as Utf8, sent and described as what it was declared.
pub const PG_TYPE_METADATA: &str = "weir.pg_type";

impl Column {
    /// The column as an Arrow field (nullable; json / jsonb / uuid marked in its metadata).
    pub fn field(&self) -> datafusion::arrow::datatypes::Field {
        let field =
            datafusion::arrow::datatypes::Field::new(&self.name, self.data_type.clone(), true);
        let declared = self.sql_type.to_ascii_lowercase();
        match declared.as_str() {
            "json" | "jsonb" | "uuid" => field.with_metadata(
                [(PG_TYPE_METADATA.to_string(), declared)]
                    .into_iter()
                    .collect(),
            ),
            _ => field,
        }
    }
}

/// Maps a Postgres type name to the Arrow type Weir stores it as.
pub fn arrow_type(sql_type: &str) -> Result<DataType> {
    let upper = sql_type.to_ascii_uppercase();
    let base = upper.split('(').next().unwrap_or("").trim();
    let t = match base {
        "BIGINT" | "INT8" => DataType::Int64,
        "INT" | "INTEGER" | "INT4" => DataType::Int32,
        "SMALLINT" | "INT2" => DataType::Int16,
        "REAL" | "FLOAT4" => DataType::Float32,
        "DOUBLE PRECISION" | "DOUBLE" | "FLOAT8" | "FLOAT" => DataType::Float64,
        "TEXT" | "VARCHAR" | "CHARACTER VARYING" | "CHAR" | "CHARACTER" | "STRING" | "JSON"
        | "JSONB" | "UUID" => DataType::Utf8,
        "BOOLEAN" | "BOOL" => DataType::Boolean,
        "DATE" => DataType::Date32,
        "TIMESTAMP" | "TIMESTAMP WITHOUT TIME ZONE" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "TIMESTAMPTZ" | "TIMESTAMP WITH TIME ZONE" => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
        }
        "TIME" | "TIME WITHOUT TIME ZONE" => DataType::Time64(TimeUnit::Microsecond),
        "BYTEA" => DataType::Binary,
        "NUMERIC" | "DECIMAL" => {
            let args: Vec<u8> = upper
                .split(['(', ')', ','])
                .skip(1)
                .filter_map(|s| s.trim().parse().ok())
                .collect();
            match args.as_slice() {
                [] => DataType::Decimal128(38, 10),
                [p] => DataType::Decimal128(*p, 0),
                [p, s, ..] => DataType::Decimal128(*p, *s as i8),
            }
        }
        _ => {
            return Err(WeirError::new(ErrorKind::UndefinedObject, format!("type \"{sql_type}\" does not exist"))
                .with_hint("supported: BIGINT, INT, SMALLINT, REAL, DOUBLE PRECISION, NUMERIC, TEXT, VARCHAR, BOOLEAN, DATE, TIME, TIMESTAMP, TIMESTAMPTZ, BYTEA, JSONB"))
        }
    };
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weir_statements_parse() {
        let stmts = parse(
            "CREATE TOPIC t WITH (partitions = 4, retention = '7 days'); \
             CREATE SOURCE s (a BIGINT, b TEXT) FROM TOPIC t FORMAT JSON; FLUSH; SHOW MATERIALIZED VIEWS; \
             SELECT 1",
        )
        .unwrap();
        assert_eq!(stmts.len(), 5);
        match &stmts[0] {
            Statement::CreateTopic { name, options, .. } => {
                assert_eq!(name, "t");
                assert_eq!(
                    options,
                    &vec![
                        ("partitions".into(), "4".into()),
                        ("retention".into(), "7 days".into())
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
        match &stmts[1] {
            Statement::CreateSource(s) => {
                assert_eq!(s.topic.as_deref(), Some("t"));
                assert_eq!(s.columns[0].data_type, DataType::Int64);
                assert_eq!(
                    s.to_sql(),
                    "CREATE SOURCE s (a BIGINT, b TEXT) FROM TOPIC t FORMAT JSON"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(stmts[2], Statement::Flush));
        assert!(matches!(
            stmts[3],
            Statement::Show(ShowKind::MaterializedViews)
        ));
        assert!(matches!(stmts[4], Statement::Standard(_)));
    }

    #[test]
    fn errors_are_syntax_errors() {
        let err = parse("SELEC 1").unwrap_err();
        assert_eq!(err.kind.sqlstate(), "42601");
        let err = parse("CREATE SOURCE s (a BIGINT)").unwrap_err();
        assert!(err.message.contains("FORMAT"), "{}", err.message);
    }
}
