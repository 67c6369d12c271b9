//! shardline-crypto
