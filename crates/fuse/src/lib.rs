//! Shardline's FUSE mount: a POSIX file system over the native client.
//!
//! Owns the translation from kernel FUSE requests to the client's inode API
//! and by-inode file handles: [`fs`] (the `fuser::Filesystem`, one tokio
//! `block_on` per request on fuser's threads), [`ops_names`] (namespace
//! operations, xattrs, permission checks), `listing` (directory listings
//! read a page at a time, one page ahead), [`ops_files`] (open, read, write,
//! flush, release, fallocate), [`open_files`] (handles shared by every open
//! of an inode in this mount), [`kernel_attrs`] (what the kernel was last
//! told of each file's attributes), [`attr`] (attributes and ownership rules) and
//! [`mount`] (checks, session options, read-ahead, unmount).
//!
//! Consistency is close-to-open: an open takes a fresh snapshot of the
//! file's chunks, and close/fsync commit everything written. The kernel page
//! cache is kept across opens of a file unchanged since this mount closed
//! it. No file name or file data is ever logged.

pub mod attr;
mod caller_groups;
mod copy_range;
pub mod error;
pub mod fs;
pub mod kernel_attrs;
mod listing;
pub mod mount;
pub mod open_files;
pub mod ops_files;
pub mod ops_names;
pub mod recall;

pub use error::FuseError;
pub use fs::{FsOptions, ShardlineFs};
pub use mount::{check_device, mount, prepare_mountpoint, watch_and_detach, MountOptions, Mounted};
