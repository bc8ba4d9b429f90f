//! What CREATE TABLE declares about a table's columns beyond their types, enforced on every
//! write (INSERT, COPY, UPDATE, a transaction's COMMIT): NOT NULL (23502) and VARCHAR(n)
//! lengths (22001), as Postgres enforces them. What Weir cannot enforce yet (DEFAULT, CHAR(n),
//! UNIQUE, CHECK, REFERENCES, WITH options) is refused with 0A000 when the table is created,
//! never accepted and ignored.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::sql::sqlparser::ast::{self, CharacterLength, ColumnOption, DataType};

use crate::error::{ErrorKind, Result, WeirError};

/// The column rules of one table.
#[derive(Debug, Default)]
pub struct ColumnChecks {
    /// Columns declared NOT NULL, by index and name.
    not_null: Vec<(usize, String)>,
    /// VARCHAR(n) columns: index, name and n (characters).
    max_chars: Vec<(usize, String, u64)>,
}

impl ColumnChecks {
    /// The rules of `create`'s columns (named as `names`, in order). With `refuse`, what cannot
    /// be enforced fails the CREATE; without (a table restored from the catalog), it is skipped.
    pub fn from_create(create: &ast::CreateTable, names: &[String], refuse: bool) -> Result<Self> {
        let refused = |what: String| -> Result<()> {
            if refuse {
                return Err(WeirError::unsupported(format!(
                    "{what} is not supported on a table yet"
                )));
            }
            Ok(())
        };
        if !matches!(create.table_options, ast::CreateTableOptions::None) {
            refused(format!("CREATE TABLE ... {}", create.table_options))?;
        }
        for constraint in &create.constraints {
            if !matches!(constraint, ast::TableConstraint::PrimaryKey(_)) {
                refused(format!("the table constraint {constraint}"))?;
            }
        }
        let mut checks = ColumnChecks::default();
        for (i, (def, name)) in create.columns.iter().zip(names).enumerate() {
            for option in &def.options {
                match &option.option {
                    ColumnOption::PrimaryKey(_) | ColumnOption::Null => {}
                    ColumnOption::NotNull => checks.not_null.push((i, name.clone())),
                    other => refused(format!("the column option {other}"))?,
                }
            }
            match &def.data_type {
                DataType::Varchar(len)
                | DataType::CharacterVarying(len)
                | DataType::CharVarying(len) => {
                    if let Some(CharacterLength::IntegerLength { length, .. }) = len {
                        checks.max_chars.push((i, name.clone(), *length));
                    }
                }
                DataType::Char(_) | DataType::Character(_) => refused(format!(
                    "the blank-padded type {} (use TEXT or VARCHAR(n))",
                    def.data_type
                ))?,
                _ => {}
            }
        }
        Ok(checks)
    }

    /// Fails on the first row of `batch` (of the table's schema) that breaks a rule.
    pub fn check(&self, table: &str, batch: &RecordBatch) -> Result<()> {
        match self.first_violation(table, batch) {
            Some(violation) => Err(violation.error),
            None => Ok(()),
        }
    }

    /// The first rule `batch` breaks (NOT NULL before lengths), with the row and column.
    pub fn first_violation(&self, table: &str, batch: &RecordBatch) -> Option<Violation> {
        for (i, name) in &self.not_null {
            let column = batch.column(*i);
            if let Some(row) = (0..column.len()).find(|&r| column.is_null(r)) {
                let error = WeirError::new(
                    ErrorKind::NotNullViolation,
                    format!(
                        "null value in column \"{name}\" of relation \"{table}\" violates \
                         not-null constraint"
                    ),
                );
                return Some(Violation::new(row, name, error));
            }
        }
        for (i, name, max) in &self.max_chars {
            let column = batch.column(*i);
            let too_long = |v: Option<&str>| v.is_some_and(|v| v.chars().count() as u64 > *max);
            let row = match (column.as_string_opt::<i32>(), column.as_string_view_opt()) {
                (Some(values), _) => values.iter().position(too_long),
                (None, Some(values)) => values.iter().position(too_long),
                (None, None) => None,
            };
            if let Some(row) = row {
                let error = WeirError::new(
                    ErrorKind::StringTooLong,
                    format!("value too long for type character varying({max})"),
                )
                .with_detail(format!("column \"{name}\" of relation \"{table}\""));
                return Some(Violation::new(row, name, error));
            }
        }
        None
    }
}

/// A row that breaks a table's column rule.
#[derive(Debug)]
pub struct Violation {
    pub row: usize,
    pub column: String,
    pub error: WeirError,
}

impl Violation {
    fn new(row: usize, column: &str, error: WeirError) -> Violation {
        Violation {
            row,
            column: column.to_string(),
            error,
        }
    }
}
