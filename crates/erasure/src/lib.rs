//! shardline-erasure
