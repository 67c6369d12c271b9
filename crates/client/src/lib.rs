//! shardline-client
