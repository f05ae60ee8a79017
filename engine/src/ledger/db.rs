//! The ledger's two SQL backends behind one small interface: the embedded SQLite file (the
//! default) and a PostgreSQL database (`ledger = "postgres://..."`).
//!
//! Every ledger query is written once, in the SQL both understand, with `?1`-style
//! placeholders (rewritten to `$1` for PostgreSQL) and owned [`Value`]s in and out, so the two
//! backends cannot drift apart query by query. What differs is kept here and in the schema:
//! how a write transaction takes its lock, how a unique-key violation or a lost race is
//! recognised, and the column types (PostgreSQL: BIGINT, BYTEA, `TEXT COLLATE "C"` so that
//! `ORDER BY` and `max()` compare bytes as SQLite does).
//!
//! The sync `postgres` client runs its own small runtime: like every ledger call, it must be
//! made from a plain thread (the server uses `spawn_blocking`), never on a tokio worker.

use std::cell::RefCell;
use std::collections::HashMap;

use postgres::types::{ToSql, Type};

/// A value bound to a placeholder or read from a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

/// What can be bound to a placeholder.
pub trait ToValue {
    fn to_value(&self) -> Value;
}

impl ToValue for i64 {
    fn to_value(&self) -> Value {
        Value::Int(*self)
    }
}
impl ToValue for u8 {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}
impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

/// A query's parameters: `&[&a, &b]`.
pub type Params<'a> = &'a [&'a dyn ToValue];

/// What a column can be read as.
pub trait FromValue: Sized {
    fn from_value(value: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Option<i64> {
        match value {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}
impl FromValue for u8 {
    fn from_value(value: &Value) -> Option<u8> {
        i64::from_value(value).and_then(|i| u8::try_from(i).ok())
    }
}
impl FromValue for bool {
    fn from_value(value: &Value) -> Option<bool> {
        i64::from_value(value).map(|i| i != 0)
    }
}
impl FromValue for String {
    fn from_value(value: &Value) -> Option<String> {
        match value {
            Value::Text(t) => Some(t.clone()),
            _ => None,
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Option<Vec<u8>> {
        match value {
            Value::Blob(b) => Some(b.clone()),
            _ => None,
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Option<Option<T>> {
        match value {
            Value::Null => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row(pub Vec<Value>);

impl Row {
    pub fn get<T: FromValue>(&self, column: usize) -> Result<T, DbError> {
        let value = self.0.get(column).ok_or(DbError::Type {
            column,
            message: "no such column".to_string(),
        })?;
        T::from_value(value).ok_or_else(|| DbError::Type {
            column,
            message: format!("unexpected value {value:?}"),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// Not a `#[source]`: the message already holds what the driver's error would repeat.
    #[error("{}", postgres_message(.0))]
    Postgres(postgres::Error),
    #[error("column {column}: {message}")]
    Type { column: usize, message: String },
    #[error("query returned no rows")]
    NoRows,
    #[error("{0} row(s) changed where exactly one was expected")]
    ChangedRows(u64),
    /// A write the ledger's keys would refuse, found before it was sent.
    #[error("{0}")]
    Refused(String),
}

impl From<postgres::Error> for DbError {
    fn from(e: postgres::Error) -> DbError {
        DbError::Postgres(e)
    }
}

fn postgres_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({}): {}", db.severity(), db.code().code(), db.message()),
        // "error connecting to server" says nothing without its cause (refused, timed out).
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e} ({cause})"),
            None => e.to_string(),
        },
    }
}

impl DbError {
    /// A PRIMARY KEY or UNIQUE constraint refused a row.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                    || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            }
            DbError::Postgres(e) => e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION),
            _ => false,
        }
    }

    /// A concurrent transaction committed first (PostgreSQL 40001 / 40P01).
    pub fn is_serialization_failure(&self) -> bool {
        match self {
            DbError::Postgres(e) => matches!(
                e.code(),
                Some(c) if *c == postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == postgres::error::SqlState::T_R_DEADLOCK_DETECTED
            ),
            _ => false,
        }
    }
}

/// Which SQL a statement is for, where the two differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

pub struct Pg {
    client: RefCell<postgres::Client>,
    /// Prepared once per connection: a batch inserts many rows with the same statement.
    statements: RefCell<HashMap<String, postgres::Statement>>,
}

/// An open ledger connection.
pub enum Db {
    Sqlite(rusqlite::Connection),
    /// Boxed: the client and its statement cache are three times an SQLite handle.
    Postgres(Box<Pg>),
}

impl Db {
    pub fn postgres(url: &str) -> Result<Db, DbError> {
        let client = postgres::Client::connect(url, postgres::NoTls)?;
        Ok(Db::Postgres(Box::new(Pg {
            client: RefCell::new(client),
            statements: RefCell::new(HashMap::new()),
        })))
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite(_) => Dialect::Sqlite,
            Db::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs one statement; returns the number of rows it changed.
    pub fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, DbError> {
        match self {
            Db::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(sql)?;
                let n = stmt.execute(rusqlite::params_from_iter(sqlite_params(params)))?;
                Ok(n as u64)
            }
            Db::Postgres(pg) => {
                let stmt = pg.prepare(sql)?;
                let bound = pg_params(&stmt, params)?;
                let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|b| &**b).collect();
                Ok(pg.client.borrow_mut().execute(&stmt, &refs)?)
            }
        }
    }

    /// Runs one statement that must change exactly one row.
    pub fn execute_one(&self, sql: &str, params: Params<'_>) -> Result<(), DbError> {
        match self.execute(sql, params)? {
            1 => Ok(()),
            n => Err(DbError::ChangedRows(n)),
        }
    }

    pub fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, DbError> {
        match self {
            Db::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(sql)?;
                let columns = stmt.column_count();
                let mut rows = stmt.query(rusqlite::params_from_iter(sqlite_params(params)))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    let mut row = Vec::with_capacity(columns);
                    for i in 0..columns {
                        row.push(match r.get_ref(i)? {
                            rusqlite::types::ValueRef::Null => Value::Null,
                            rusqlite::types::ValueRef::Integer(i) => Value::Int(i),
                            rusqlite::types::ValueRef::Text(t) => {
                                Value::Text(String::from_utf8_lossy(t).into_owned())
                            }
                            rusqlite::types::ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                            rusqlite::types::ValueRef::Real(_) => {
                                return Err(DbError::Type {
                                    column: i,
                                    message: "a REAL where the ledger stores none".to_string(),
                                })
                            }
                        });
                    }
                    out.push(Row(row));
                }
                Ok(out)
            }
            Db::Postgres(pg) => {
                let stmt = pg.prepare(sql)?;
                let bound = pg_params(&stmt, params)?;
                let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|b| &**b).collect();
                let rows = pg.client.borrow_mut().query(&stmt, &refs)?;
                rows.iter().map(pg_row).collect()
            }
        }
    }

    /// The first row, if any.
    pub fn query_opt(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The first row, which must exist.
    pub fn query_one(&self, sql: &str, params: Params<'_>) -> Result<Row, DbError> {
        self.query_opt(sql, params)?.ok_or(DbError::NoRows)
    }

    /// Statements without parameters or results, `;`-separated.
    pub fn batch(&self, sql: &str) -> Result<(), DbError> {
        match self {
            Db::Sqlite(conn) => Ok(conn.execute_batch(sql)?),
            Db::Postgres(pg) => Ok(pg.client.borrow_mut().batch_execute(sql)?),
        }
    }

    /// A write transaction. SQLite: `BEGIN IMMEDIATE`, the file's one write lock. PostgreSQL:
    /// SERIALIZABLE; the caller also locks the version row, so writers queue on it and a
    /// writer that lost the race gets a serialization failure, never a lost update.
    pub fn write_tx(&self) -> Result<Tx<'_>, DbError> {
        self.batch(match self {
            Db::Sqlite(_) => "BEGIN IMMEDIATE",
            Db::Postgres(_) => "BEGIN ISOLATION LEVEL SERIALIZABLE",
        })?;
        Ok(Tx {
            db: self,
            open: true,
        })
    }

    /// A guard over the transaction a [`Tx::keep_open`] left open: committed by
    /// [`Tx::commit`], rolled back when dropped.
    pub fn resume_tx(&self) -> Tx<'_> {
        Tx {
            db: self,
            open: true,
        }
    }

    /// A read transaction: every read in it sees one version.
    pub fn read_tx(&self) -> Result<Tx<'_>, DbError> {
        self.batch(match self {
            Db::Sqlite(_) => "BEGIN DEFERRED",
            Db::Postgres(_) => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        })?;
        Ok(Tx {
            db: self,
            open: true,
        })
    }
}

/// An open transaction; rolled back unless committed.
pub struct Tx<'a> {
    db: &'a Db,
    open: bool,
}

impl Tx<'_> {
    pub fn commit(mut self) -> Result<(), DbError> {
        self.open = false;
        self.db.batch("COMMIT")
    }

    /// Leaves the transaction open on the connection past this guard, for
    /// [`Db::resume_tx`] to take up again.
    pub fn keep_open(mut self) {
        self.open = false;
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            // A failed rollback leaves nothing committed either: the connection is dropped
            // with the ledger and the server discards its transaction.
            let _ = self.db.batch("ROLLBACK");
        }
    }
}

impl Pg {
    fn prepare(&self, sql: &str) -> Result<postgres::Statement, DbError> {
        if let Some(stmt) = self.statements.borrow().get(sql) {
            return Ok(stmt.clone());
        }
        let stmt = self
            .client
            .borrow_mut()
            .prepare(&dollar_placeholders(sql))?;
        self.statements
            .borrow_mut()
            .insert(sql.to_string(), stmt.clone());
        Ok(stmt)
    }
}

fn sqlite_params(params: Params<'_>) -> Vec<rusqlite::types::Value> {
    params
        .iter()
        .map(|p| match p.to_value() {
            Value::Null => rusqlite::types::Value::Null,
            Value::Int(i) => rusqlite::types::Value::Integer(i),
            Value::Text(t) => rusqlite::types::Value::Text(t),
            Value::Blob(b) => rusqlite::types::Value::Blob(b),
        })
        .collect()
}

type PgParam = Box<dyn ToSql + Sync>;

/// Binds each value as the type PostgreSQL inferred for its placeholder: the wire protocol is
/// typed, SQLite is not.
fn pg_params(stmt: &postgres::Statement, params: Params<'_>) -> Result<Vec<PgParam>, DbError> {
    let types = stmt.params();
    if types.len() != params.len() {
        return Err(DbError::Type {
            column: params.len(),
            message: format!(
                "{} parameter(s) given, the statement takes {}",
                params.len(),
                types.len()
            ),
        });
    }
    types
        .iter()
        .zip(params)
        .enumerate()
        .map(|(i, (ty, p))| {
            let value = p.to_value();
            let mismatch = || DbError::Type {
                column: i,
                message: format!("cannot bind {value:?} as {ty}"),
            };
            let bound: PgParam = match (ty, &value) {
                (t, Value::Int(v)) if *t == Type::INT8 => Box::new(*v),
                (t, Value::Int(v)) if *t == Type::INT4 => {
                    Box::new(i32::try_from(*v).map_err(|_| mismatch())?)
                }
                (t, Value::Int(v)) if *t == Type::INT2 => {
                    Box::new(i16::try_from(*v).map_err(|_| mismatch())?)
                }
                (t, Value::Int(v)) if *t == Type::BOOL => Box::new(*v != 0),
                (t, Value::Null) if *t == Type::INT8 => Box::new(None::<i64>),
                (t, Value::Null) if *t == Type::BYTEA => Box::new(None::<Vec<u8>>),
                (_, Value::Null) => Box::new(None::<String>),
                (t, Value::Blob(b)) if *t == Type::BYTEA => Box::new(b.clone()),
                (t, Value::Text(s))
                    if [
                        Type::TEXT,
                        Type::VARCHAR,
                        Type::BPCHAR,
                        Type::NAME,
                        Type::UNKNOWN,
                    ]
                    .contains(t) =>
                {
                    Box::new(s.clone())
                }
                _ => return Err(mismatch()),
            };
            Ok(bound)
        })
        .collect()
}

fn pg_row(row: &postgres::Row) -> Result<Row, DbError> {
    let mut out = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let value = if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)?.map(Value::Int)
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)?
                .map(|v| Value::Int(i64::from(v)))
        } else if *ty == Type::INT2 {
            row.try_get::<_, Option<i16>>(i)?
                .map(|v| Value::Int(i64::from(v)))
        } else if *ty == Type::BOOL {
            row.try_get::<_, Option<bool>>(i)?
                .map(|v| Value::Int(i64::from(v)))
        } else if *ty == Type::BYTEA {
            row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob)
        } else if [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME].contains(ty) {
            row.try_get::<_, Option<String>>(i)?.map(Value::Text)
        } else {
            return Err(DbError::Type {
                column: i,
                message: format!("column type {ty} is not one the ledger reads"),
            });
        };
        out.push(value.unwrap_or(Value::Null));
    }
    Ok(Row(out))
}

/// `?1` → `$1`, outside quoted literals and identifiers.
pub fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    for c in sql.chars() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '?') => {
                out.push('$');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_outside_literals_only() {
        assert_eq!(
            dollar_placeholders("SELECT '?1' FROM t WHERE a = ?1 AND \"b?\" = ?12"),
            "SELECT '?1' FROM t WHERE a = $1 AND \"b?\" = $12"
        );
    }

    #[test]
    fn rows_read_as_typed_values() {
        let row = Row(vec![Value::Int(7), Value::Null, Value::Text("x".into())]);
        assert_eq!(row.get::<i64>(0).unwrap(), 7);
        assert!(row.get::<bool>(0).unwrap());
        assert_eq!(row.get::<Option<String>>(1).unwrap(), None);
        assert!(row.get::<String>(1).is_err());
        assert!(row.get::<i64>(2).is_err());
        assert!(row.get::<i64>(3).is_err());
    }
}
