//! Mount errors, and client errors as errno for the kernel.

use fuser::Errno;
use shardline_client::ClientError;

/// Why a mount could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum FuseError {
    #[error("/dev/fuse is missing: load the fuse module (modprobe fuse), or give the container the device (--device /dev/fuse)")]
    DeviceMissing,
    #[error("permission denied opening /dev/fuse: run as root, or add this user to the group that owns /dev/fuse (containers also need --cap-add SYS_ADMIN)")]
    DeviceDenied,
    #[error("mount point {0}: {1}")]
    Mountpoint(String, String),
    #[error("mount failed: {0}")]
    Mount(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The errno for a client error.
pub fn errno(e: &ClientError) -> Errno {
    Errno::from_i32(e.code().errno())
}
