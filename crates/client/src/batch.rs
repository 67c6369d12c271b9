//! Many namespace calls in one client call, pipelined, for loaders and
//! ingest jobs: [`Client::stat_many`] and [`Client::write_files`].
//!
//! Done one by one, a stat of `/data/train/x` costs a `Getattr` of the
//! root and a `Lookup` per component, each a round trip waited for in turn.
//! Here each directory on the way is resolved once for the whole batch
//! (`prefetch_open.rs`), every item then costs one `Lookup`, and up to
//! [`IN_FLIGHT`] items are in flight at once (each on a pooled connection
//! of its own; the metadata leader batches their log writes). Results come
//! back in the order asked, one per item: one failing item fails alone.

use std::path::Path;

use futures::stream::{self, StreamExt};

use crate::client::attr_of;
use crate::prefetch_open::Opener;
use crate::{Client, ClientError, FileStat};

/// Items of one batch in flight at once.
pub const IN_FLIGHT: usize = 64;

impl Client {
    /// Stat every path in `paths`; results in the same order.
    pub async fn stat_many<P: AsRef<Path>>(&self, paths: &[P]) -> Vec<Result<FileStat, ClientError>> {
        let opener = Opener::new(self.inner().clone(), 1);
        stream::iter(paths)
            .map(|p| {
                let opener = &opener;
                async move {
                    let path = p.as_ref();
                    if path.as_os_str() == "/" {
                        return self.stat(path).await;
                    }
                    Ok(FileStat::from_wire(&attr_of(opener.lookup(path).await?)?))
                }
            })
            .buffered(IN_FLIGHT)
            .collect()
            .await
    }

    /// Write each `(path, bytes)` as a whole file (created, or replaced if
    /// it exists), up to [`IN_FLIGHT`] at a time; results (bytes written)
    /// in the same order. Parent directories must exist.
    pub async fn write_files<P: AsRef<Path>, B: AsRef<[u8]>>(&self, files: &[(P, B)]) -> Vec<Result<u64, ClientError>> {
        stream::iter(files).map(|(p, b)| self.write_file(p.as_ref(), b.as_ref())).buffered(IN_FLIGHT).collect().await
    }
}
