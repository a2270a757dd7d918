/// What can go wrong behind the storage seam, in the domain's words.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("not found")]
    NotFound,
    /// A live tracking number may belong to one pool only, across all accounts.
    #[error("{0} is already a tracking number")]
    NumberTaken(String),
    /// Another account retired this number recently: it stays theirs for the quarantine.
    #[error("{0} was retired by another account recently")]
    NumberQuarantined(String),
    /// An account's last live API key cannot be revoked.
    #[error("the account's last API key")]
    LastApiKey,
    /// A `source` pool shows one static number; it cannot hold a second live one.
    #[error("a source pool has exactly one live number")]
    SourcePoolFull,
    #[error("the database URL must start with sqlite: or postgres://")]
    UnsupportedUrl,
    #[error("could not create the database folder")]
    CreateDir(#[source] std::io::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StorageError {
    /// The database did not answer (refused, timed out, connection lost), as opposed to
    /// answering with an error: worth waiting for, not a mistake in the request or settings.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            StorageError::Database(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut)
        )
    }

    pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
        matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
    }
}
