//! The metadata service's error type.

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("raft log store: {0}")]
    Store(String),
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    #[error("corrupt raft log entry: {0}")]
    CorruptEntry(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt snapshot: {0}")]
    CorruptSnapshot(String),
    #[error("metadata at rest: {0}")]
    AtRest(String),
    #[error("invalid configuration: {0}")]
    Config(String),
}

macro_rules! store_err {
    ($($t:ty),*) => {$(
        impl From<$t> for MetaError {
            fn from(e: $t) -> Self { MetaError::Store(e.to_string()) }
        }
    )*};
}
store_err!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    protobuf::ProtobufError
);
