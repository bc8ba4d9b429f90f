//! One error type for the whole database. Each variant maps to a Postgres SQLSTATE, so whatever
//! goes wrong reaches the client as a proper ErrorResponse (message, and a hint where useful) and
//! the session goes on.

use std::fmt;

use datafusion::error::DataFusionError;

/// A Weir error: a SQLSTATE class plus a message a person understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeirError {
    pub kind: ErrorKind,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

/// The kinds of error, each with its SQLSTATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 42601
    Syntax,
    /// 42P01
    UndefinedTable,
    /// 42703
    UndefinedColumn,
    /// 42P07
    DuplicateTable,
    /// 22P02
    InvalidText,
    /// 22000 (other data exceptions)
    Data,
    /// 22003: a value out of its type's range
    NumericOutOfRange,
    /// 22012
    DivisionByZero,
    /// 21000: a scalar subquery returned more than one row
    CardinalityViolation,
    /// 22001: a string longer than its VARCHAR(n)
    StringTooLong,
    /// 42704: an unknown type or other object
    UndefinedObject,
    /// 42701
    DuplicateColumn,
    /// 23505
    UniqueViolation,
    /// 23502
    NotNullViolation,
    /// 0A000
    Unsupported,
    /// 2BP01: drop of an object others depend on
    DependentObjects,
    /// 55000: the object is not in a state to do this (a failed view)
    ObjectNotInPrerequisiteState,
    /// 42809: wrong kind of object (INSERT into a view ...)
    WrongObjectType,
    /// 42804
    DatatypeMismatch,
    /// 22023
    InvalidParameter,
    /// 42883
    UndefinedFunction,
    /// 57014: the statement was canceled (Ctrl-C, statement_timeout)
    QueryCanceled,
    /// 54001: a statement nested too deeply to plan
    StackDepth,
    /// 54000: past another limit (array dimensions, nested subqueries)
    ProgramLimitExceeded,
    /// 58030: I/O error in the store or the log
    Io,
    /// 42710: a role (or other non-relation object) of that name exists
    DuplicateObject,
    /// 42501: the role lacks the privilege
    InsufficientPrivilege,
    /// 42939: a name reserved for the system (`public`, `pg_*` roles)
    ReservedName,
    /// 0LP01: a role membership that would make a loop
    InvalidGrantOperation,
    /// 55006: the object is in use (dropping the session's own role)
    ObjectInUse,
    /// 3F000: a schema other than `public`
    InvalidSchemaName,
    /// 3D000: a database other than `weir`
    InvalidCatalogName,
    /// XX000
    Internal,
}

impl ErrorKind {
    pub fn sqlstate(self) -> &'static str {
        match self {
            ErrorKind::Syntax => "42601",
            ErrorKind::UndefinedTable => "42P01",
            ErrorKind::UndefinedColumn => "42703",
            ErrorKind::DuplicateTable => "42P07",
            ErrorKind::InvalidText => "22P02",
            ErrorKind::Data => "22000",
            ErrorKind::NumericOutOfRange => "22003",
            ErrorKind::DivisionByZero => "22012",
            ErrorKind::CardinalityViolation => "21000",
            ErrorKind::StringTooLong => "22001",
            ErrorKind::UndefinedObject => "42704",
            ErrorKind::DuplicateColumn => "42701",
            ErrorKind::UniqueViolation => "23505",
            ErrorKind::NotNullViolation => "23502",
            ErrorKind::Unsupported => "0A000",
            ErrorKind::DependentObjects => "2BP01",
            ErrorKind::WrongObjectType => "42809",
            ErrorKind::ObjectNotInPrerequisiteState => "55000",
            ErrorKind::DatatypeMismatch => "42804",
            ErrorKind::InvalidParameter => "22023",
            ErrorKind::UndefinedFunction => "42883",
            ErrorKind::QueryCanceled => "57014",
            ErrorKind::StackDepth => "54001",
            ErrorKind::ProgramLimitExceeded => "54000",
            ErrorKind::Io => "58030",
            ErrorKind::DuplicateObject => "42710",
            ErrorKind::InsufficientPrivilege => "42501",
            ErrorKind::ReservedName => "42939",
            ErrorKind::InvalidGrantOperation => "0LP01",
            ErrorKind::ObjectInUse => "55006",
            ErrorKind::InvalidSchemaName => "3F000",
            ErrorKind::InvalidCatalogName => "3D000",
            ErrorKind::Internal => "XX000",
        }
    }
}

pub type Result<T, E = WeirError> = std::result::Result<T, E>;

impl WeirError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        WeirError {
            kind,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn syntax(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Syntax, message)
    }
    pub fn unsupported(what: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, what)
    }
    pub fn undefined_table(name: &str) -> Self {
        Self::new(
            ErrorKind::UndefinedTable,
            format!("relation \"{name}\" does not exist"),
        )
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    /// A caught panic (a bug) as an XX000 error, so one statement fails instead of a session.
    pub fn from_panic(panic: &(dyn std::any::Any + Send)) -> Self {
        let text = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Self::internal(format!("internal error: {text}"))
    }
    pub fn io(context: &str, err: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Io, format!("{context}: {err}"))
    }
}

impl fmt::Display for WeirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for WeirError {}

impl From<DataFusionError> for WeirError {
    fn from(err: DataFusionError) -> Self {
        classify_datafusion(err)
    }
}

impl From<datafusion::arrow::error::ArrowError> for WeirError {
    fn from(err: datafusion::arrow::error::ArrowError) -> Self {
        classify_arrow(&err)
    }
}

impl From<sled::Error> for WeirError {
    fn from(err: sled::Error) -> Self {
        WeirError::io("store", err)
    }
}

impl From<crate::topics::TopicError> for WeirError {
    fn from(err: crate::topics::TopicError) -> Self {
        use crate::topics::TopicError;
        match err {
            TopicError::AlreadyExists(name) => WeirError::new(
                ErrorKind::DuplicateTable,
                format!("topic \"{name}\" already exists"),
            ),
            TopicError::NotFound(name) => WeirError::new(
                ErrorKind::UndefinedTable,
                format!("topic \"{name}\" does not exist"),
            ),
            TopicError::InvalidName(name) => WeirError::new(
                ErrorKind::InvalidParameter,
                format!("invalid topic name \"{name}\""),
            )
            .with_hint("topic names use letters, digits, '.', '_' and '-'"),
            other => WeirError::io("topic log", other),
        }
    }
}

/// Sorts a DataFusion error into the SQLSTATE a Postgres user expects.
fn classify_datafusion(err: DataFusionError) -> WeirError {
    match err {
        DataFusionError::SQL(e, _) => WeirError::syntax(e.to_string()),
        DataFusionError::ArrowError(e, _) => classify_arrow(&e),
        DataFusionError::NotImplemented(m) => WeirError::unsupported(m),
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            classify_datafusion(*inner)
        }
        DataFusionError::Collection(mut errors) if !errors.is_empty() => {
            classify_datafusion(errors.remove(0))
        }
        // An error shared between the tasks of a plan (a scalar subquery's, for one): classified
        // as itself.
        DataFusionError::Shared(inner) => match std::sync::Arc::try_unwrap(inner) {
            Ok(inner) => classify_datafusion(inner),
            Err(shared) => match shared.as_ref() {
                DataFusionError::Execution(m) => {
                    classify_datafusion(DataFusionError::Execution(m.clone()))
                }
                other => WeirError::internal(other.to_string()),
            },
        },
        DataFusionError::External(e) => match e.downcast::<WeirError>() {
            Ok(weir) => *weir,
            Err(e) => WeirError::internal(e.to_string()),
        },
        DataFusionError::SchemaError(e, _) => match *e {
            datafusion::common::SchemaError::FieldNotFound { field, .. } => WeirError::new(
                ErrorKind::UndefinedColumn,
                format!("column \"{}\" does not exist", field.name()),
            ),
            e => {
                let text = e.to_string();
                let kind = if text.contains("No field named") || text.contains("not found") {
                    ErrorKind::UndefinedColumn
                } else {
                    ErrorKind::Syntax
                };
                WeirError::new(kind, clean_message(&text))
            }
        },
        DataFusionError::Plan(m) => {
            if let Some(operator) = missing_operator(&m) {
                let error = WeirError::new(
                    ErrorKind::UndefinedFunction,
                    format!("operator does not exist: {operator}"),
                );
                return if operator.contains("interval") {
                    error.with_hint(
                        "a number times an interval is not supported yet; write the amount in \
                         the interval (INTERVAL '2 days'), or add intervals",
                    )
                } else {
                    error.with_hint("cast an operand so both have types the operator takes")
                };
            }
            let kind = if m.starts_with("table '") && m.ends_with("' not found") {
                let qualified = &m["table '".len()..m.len() - "' not found".len()];
                let name = qualified.rsplit('.').next().unwrap_or(qualified);
                return WeirError::undefined_table(name);
            } else if m.contains("Invalid function") || m.contains("No function matches") {
                ErrorKind::UndefinedFunction
            } else if m.contains("Cannot infer common") || m.contains("Cannot coerce") {
                ErrorKind::DatatypeMismatch
            } else {
                ErrorKind::Syntax
            };
            WeirError::new(kind, clean_message(&m))
        }
        DataFusionError::Execution(m) => {
            if m.contains("Scalar subquery returned more than one row") {
                return WeirError::new(
                    ErrorKind::CardinalityViolation,
                    "more than one row returned by a subquery used as an expression",
                );
            }
            if m.contains("Divide by zero") || m.contains("division by zero") {
                return division_by_zero();
            }
            let kind = if ["can't cast value", "too large to store", "overflow"]
                .iter()
                .any(|p| m.to_ascii_lowercase().contains(p))
            {
                ErrorKind::NumericOutOfRange
            } else if m.contains("Cannot cast") || m.contains("Error parsing") {
                ErrorKind::InvalidText
            } else {
                ErrorKind::Data
            };
            WeirError::new(kind, clean_message(&m))
        }
        other => WeirError::internal(clean_message(&other.to_string())),
    }
}

/// `bigint * interval` from DataFusion's "Cannot get result type for temporal operation Int64 *
/// Interval(MonthDayNano): ..." or "Cannot coerce arithmetic expression ... to valid types"
/// (arithmetic it has no kernel for), in Postgres's type names.
fn missing_operator(message: &str) -> Option<String> {
    let operation = match message.strip_prefix("Cannot get result type for temporal operation ") {
        Some(rest) => rest.split(": ").next()?,
        None => message
            .strip_prefix("Cannot coerce arithmetic expression ")?
            .strip_suffix(" to valid types")?,
    };
    let (op, (left, right)) = ["*", "/", "+", "-", "%"]
        .into_iter()
        .find_map(|op| Some((op, operation.split_once(&format!(" {op} "))?)))?;
    let pg = |arrow: &str| match arrow.split('(').next().unwrap_or(arrow) {
        "Int8" | "Int16" | "UInt8" => "smallint",
        "Int32" | "UInt16" => "integer",
        "Int64" | "UInt32" => "bigint",
        "Float32" => "real",
        "Float64" => "double precision",
        "Decimal128" | "Decimal256" => "numeric",
        "Interval" => "interval",
        "Date32" | "Date64" => "date",
        "Timestamp" => "timestamp",
        "Time32" | "Time64" => "time",
        "Utf8" | "Utf8View" | "LargeUtf8" => "text",
        "Boolean" => "boolean",
        _ => "unknown",
    };
    Some(format!("{} {op} {}", pg(left), pg(right)))
}

fn classify_arrow(err: &datafusion::arrow::error::ArrowError) -> WeirError {
    use datafusion::arrow::error::ArrowError;
    let text = err.to_string().to_ascii_lowercase();
    let out_of_range = text.contains("can't cast value")
        || text.contains("too large to store")
        || text.contains("overflow");
    let kind = match err {
        ArrowError::DivideByZero => return division_by_zero(),
        ArrowError::ArithmeticOverflow(_) => ErrorKind::NumericOutOfRange,
        _ if out_of_range => ErrorKind::NumericOutOfRange,
        ArrowError::CastError(_) | ArrowError::ParseError(_) | ArrowError::JsonError(_) => {
            ErrorKind::InvalidText
        }
        ArrowError::InvalidArgumentError(_) => ErrorKind::Data,
        _ => ErrorKind::Internal,
    };
    WeirError::new(kind, clean_message(&err.to_string()))
}

/// Division by zero, in Postgres's words.
fn division_by_zero() -> WeirError {
    WeirError::new(ErrorKind::DivisionByZero, "division by zero")
}

/// DataFusion prefixes messages with "Error during planning: " and the like; a Postgres user
/// wants the message alone, lowercase first.
fn clean_message(text: &str) -> String {
    let mut s = text;
    for prefix in [
        "Error during planning: ",
        "Execution error: ",
        "Schema error: ",
        "Arrow error: ",
        "Arithmetic overflow: ",
        "Cast error: ",
        "Parser error: ",
        "This feature is not implemented: ",
    ] {
        while let Some(rest) = s.strip_prefix(prefix) {
            s = rest;
        }
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    if let Some(first) = chars.next() {
        out.extend(first.to_lowercase());
        out.push_str(chars.as_str());
    }
    out
}
