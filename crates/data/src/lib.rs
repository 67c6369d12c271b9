//! shardline-data
