//! What stored the data, as the data servers themselves report it (their
//! heartbeats carry their store backend, whether it uses O_DIRECT and the
//! file system under their data folder; the metadata leader's status
//! returns the last report of each): for `demo`, `bench` and `admin status`.

use std::collections::BTreeMap;

use shardline_proto::v1 as pb;

/// One data server's storage, as it reported it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerStorage {
    pub id: u64,
    pub backend: String,
    pub direct_io: bool,
    pub fs_type: String,
}

/// Every data server's storage, from the leader's status.
#[derive(Debug, Clone, Default)]
pub struct StorageReport {
    pub servers: Vec<ServerStorage>,
    /// Data servers that have not reported yet.
    pub unreported: Vec<u64>,
}

impl StorageReport {
    pub fn from_status(st: &pb::ClusterStatus) -> Self {
        let mut r = StorageReport::default();
        for d in &st.data {
            match &d.store {
                Some(s) if !s.backend.is_empty() => r.servers.push(ServerStorage {
                    id: d.id,
                    backend: s.backend.clone(),
                    direct_io: s.direct_io,
                    fs_type: s.fs_type.clone(),
                }),
                _ => r.unreported.push(d.id),
            }
        }
        r
    }

    /// Distinct (backend, O_DIRECT, file system) with the servers having each.
    fn kinds(&self) -> BTreeMap<(&str, bool, &str), Vec<u64>> {
        let mut kinds: BTreeMap<_, Vec<u64>> = BTreeMap::new();
        for s in &self.servers {
            kinds.entry((s.backend.as_str(), s.direct_io, s.fs_type.as_str())).or_default().push(s.id);
        }
        kinds
    }

    /// JSON fields: `store_backend`, `direct_io`, `data_fs` (each the one
    /// value every data server reported; else a comma-separated list, and
    /// `direct_io` null), and `data_server_storage` with each server's report.
    pub fn json_fields(&self) -> serde_json::Map<String, serde_json::Value> {
        let distinct = |f: &dyn Fn(&ServerStorage) -> String| {
            let mut v: Vec<String> = self.servers.iter().map(f).collect();
            v.sort();
            v.dedup();
            if v.is_empty() {
                "unknown".to_string()
            } else {
                v.join(",")
            }
        };
        let direct: Vec<bool> = self.servers.iter().map(|s| s.direct_io).collect();
        let direct_io = match direct.first() {
            Some(&d) if direct.iter().all(|&x| x == d) => serde_json::Value::Bool(d),
            _ => serde_json::Value::Null,
        };
        let each: Vec<_> = self
            .servers
            .iter()
            .map(|s| {
                serde_json::json!({"id": s.id, "store_backend": s.backend, "direct_io": s.direct_io, "data_fs": s.fs_type})
            })
            .collect();
        let mut m = serde_json::Map::new();
        m.insert("store_backend".into(), distinct(&|s| s.backend.clone()).into());
        m.insert("direct_io".into(), direct_io);
        m.insert("data_fs".into(), distinct(&|s| s.fs_type.clone()).into());
        m.insert("data_server_storage".into(), each.into());
        m
    }

    /// One line: "io_uring, O_DIRECT, on ext4 (all 6 data servers)".
    pub fn line(&self) -> String {
        if self.servers.is_empty() && self.unreported.is_empty() {
            return "not reported (no metadata leader answered)".into();
        }
        let kinds = self.kinds();
        let total = self.servers.len() + self.unreported.len();
        let mut parts: Vec<String> = kinds
            .iter()
            .map(|((backend, direct, fs), ids)| {
                let io = if *direct { "O_DIRECT" } else { "buffered" };
                let who = if kinds.len() == 1 && self.unreported.is_empty() {
                    format!("all {total} data servers")
                } else {
                    format!("data servers {}", ids.iter().map(u64::to_string).collect::<Vec<_>>().join(","))
                };
                format!("{backend}, {io}, on {fs} ({who})")
            })
            .collect();
        if !self.unreported.is_empty() {
            let ids: Vec<String> = self.unreported.iter().map(u64::to_string).collect();
            parts.push(format!("not reported yet by data servers {}", ids.join(",")));
        }
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(id: u64, backend: &str, direct_io: bool, fs: &str) -> pb::DataServerInfo {
        pb::DataServerInfo {
            id,
            store: Some(pb::StoreInfo { backend: backend.into(), direct_io, fs_type: fs.into() }),
            ..Default::default()
        }
    }

    #[test]
    fn one_kind_of_storage_is_reported_once() {
        let st = pb::ClusterStatus {
            data: (1..=6).map(|i| server(i, "io_uring", true, "ext4")).collect(),
            ..Default::default()
        };
        let r = StorageReport::from_status(&st);
        let j = r.json_fields();
        assert_eq!(
            (j["store_backend"].as_str(), j["direct_io"].as_bool(), j["data_fs"].as_str()),
            (Some("io_uring"), Some(true), Some("ext4"))
        );
        assert_eq!(j["data_server_storage"].as_array().map(Vec::len), Some(6));
        assert_eq!(r.line(), "io_uring, O_DIRECT, on ext4 (all 6 data servers)");
    }

    #[test]
    fn mixed_and_missing_reports_are_shown_as_they_are() {
        let mut data = vec![server(1, "io_uring", true, "xfs"), server(2, "file", false, "tmpfs")];
        data.push(pb::DataServerInfo { id: 3, ..Default::default() });
        let r = StorageReport::from_status(&pb::ClusterStatus { data, ..Default::default() });
        let j = r.json_fields();
        assert_eq!(j["store_backend"], "file,io_uring");
        assert_eq!(j["direct_io"], serde_json::Value::Null);
        assert_eq!(j["data_fs"], "tmpfs,xfs");
        assert_eq!(
            r.line(),
            "file, buffered, on tmpfs (data servers 2); io_uring, O_DIRECT, on xfs (data servers 1); \
             not reported yet by data servers 3"
        );
    }
}
