//! Opening the database file: refusing files that are not ours without touching them, creating
//! and migrating the schema (`user_version`), and the connection settings that make commits
//! durable.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::{Error, Result, sql};

pub const DB_FILE: &str = "sluice.db";
/// `PRAGMA application_id` of a Sluice database: "SLCE".
pub const APPLICATION_ID: i32 = 0x534C_4345;
pub const SCHEMA_VERSION: usize = sql::MIGRATIONS.len();

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Opens the writer's connection to `dir/sluice.db`, creating the directory and database if
/// needed. Returns the connection and the database path (for readers).
pub fn open(dir: &Path) -> Result<(Connection, PathBuf)> {
    create_private_dir(dir)?;
    let path = dir.join(DB_FILE);
    let fresh = check_header(&path)?;
    create_private_file(&path)?;
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // A database of ours with no tables is one whose creation was interrupted (SQLite rolled
    // the hot journal back when it opened): create it again.
    // The first statement that reads the schema is where a damaged file shows; say which file
    // and what to do rather than answering every request with 503 later.
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
                Error::Corrupt {
                    path: path.display().to_string(),
                    reason: format!("damaged: {e}"),
                }
            }
            _ => e.into(),
        })?;
    if fresh || tables == 0 {
        create(&conn)?;
    }
    migrate(&conn, &path)?;
    configure(&conn)?;
    // Durability: WAL with a full fsync at every commit. Never weaken this; group commit is how
    // throughput is bought. The one exception is a transaction of leases alone, which nothing
    // needs on disk (the writer's `Durability::Volatile`).
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Unavailable(format!(
            "cannot switch {} to WAL (journal mode is {mode})",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "cache_size", -16_000)?;
    Ok((conn, path))
}

/// Message bodies are private to the user running Sluice: directories it creates are 0700
/// (existing ones are left as the operator made them).
fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| {
        Error::Unavailable(format!(
            "cannot create data directory {}: {e}",
            dir.display()
        ))
    })
}

/// Makes the database file 0600 before SQLite opens it: SQLite gives the `-wal` and `-shm`
/// files it creates the database file's permissions, so all three stay private. A database
/// from an older Sluice (0644) is tightened too.
fn create_private_file(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let cannot = |e: std::io::Error| {
            Error::Unavailable(format!("cannot create {}: {e}", path.display()))
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(cannot)?;
        let mode = file.metadata().map_err(cannot)?.permissions().mode();
        if mode & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))
                .map_err(cannot)?;
        }
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            let side = Path::new(&side);
            if let Ok(meta) = std::fs::metadata(side)
                && meta.permissions().mode() & 0o077 != 0
            {
                std::fs::set_permissions(
                    side,
                    std::fs::Permissions::from_mode(meta.permissions().mode() & 0o700),
                )
                .map_err(cannot)?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Per-connection settings shared by the writer and the readers.
pub fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Savepoint sub-journals (one savepoint per request in a group commit) stay in memory
    // instead of spilling to temporary files; durability of commits is unaffected.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Reads the file header without SQLite, so a file that is not ours is left exactly as it was.
/// Returns true when there is no database yet (missing or empty file).
fn check_header(path: &Path) -> Result<bool> {
    let corrupt = |reason: &str| Error::Corrupt {
        path: path.display().to_string(),
        reason: reason.to_owned(),
    };
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(e) => {
            return Err(Error::Unavailable(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let mut header = Vec::with_capacity(100);
    (&mut file)
        .take(100)
        .read_to_end(&mut header)
        .map_err(|e| Error::Unavailable(format!("cannot read {}: {e}", path.display())))?;
    if header.is_empty() {
        return Ok(true);
    }
    if header.len() < 100 || &header[..16] != SQLITE_MAGIC {
        return Err(corrupt("not a SQLite database"));
    }
    // The application id lives at byte 68 of the header, big-endian. It is written when the
    // database is created, before WAL mode, so the main file always holds it.
    let app_id = i32::from_be_bytes([header[68], header[69], header[70], header[71]]);
    if app_id != APPLICATION_ID {
        return Err(corrupt(&format!(
            "a SQLite database of another application (application_id {app_id:#x})"
        )));
    }
    Ok(false)
}

/// Creates the schema in one transaction, with the application id, in rollback-journal mode so
/// the header on disk carries the id before anything else is written.
fn create(conn: &Connection) -> Result<()> {
    let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
    if tables != 0 {
        // Only reachable if the file appeared between the header check and the open.
        return Err(Error::Corrupt {
            path: DB_FILE.into(),
            reason: "database already has tables".into(),
        });
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let created = (|| -> Result<()> {
        conn.pragma_update(None, "application_id", APPLICATION_ID)?;
        for migration in sql::MIGRATIONS {
            conn.execute_batch(migration)?;
        }
        conn.pragma_update(None, "user_version", SCHEMA_VERSION as i64)?;
        Ok(())
    })();
    match created {
        Ok(()) => Ok(conn.execute_batch("COMMIT")?),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn migrate(conn: &Connection, path: &Path) -> Result<()> {
    let corrupt = |reason: String| Error::Corrupt {
        path: path.display().to_string(),
        reason,
    };
    let app_id: i32 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
    if app_id != APPLICATION_ID {
        return Err(corrupt(format!(
            "a SQLite database of another application (application_id {app_id:#x})"
        )));
    }
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let version = usize::try_from(version)
        .map_err(|_| corrupt(format!("unknown schema version {version}")))?;
    if version == 0 {
        return Err(corrupt(
            "Sluice database without a schema (user_version 0)".into(),
        ));
    }
    if version > SCHEMA_VERSION {
        return Err(corrupt(format!(
            "schema version {version} is newer than this Sluice understands ({SCHEMA_VERSION}); upgrade Sluice"
        )));
    }
    if version < SCHEMA_VERSION {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let migrated = (|| -> Result<()> {
            for migration in &sql::MIGRATIONS[version..] {
                conn.execute_batch(migration)?;
            }
            conn.pragma_update(None, "user_version", SCHEMA_VERSION as i64)?;
            Ok(())
        })();
        match migrated {
            Ok(()) => conn.execute_batch("COMMIT")?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Opens one more connection for reads.
pub fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&conn)?;
    conn.pragma_update(None, "query_only", "ON")?;
    Ok(conn)
}
