//! shardline-meta
