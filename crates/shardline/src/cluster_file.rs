//! `cluster.toml`: where a cluster's servers listen, which key file its
//! clients use, and the TLS files (cluster CA, revocation list, each
//! server's certificate, the client's and the operator's). Written by
//! `shardline up`, read by every client command.
//!
//! Format version 1 throughout: the TLS fields were added as optional ones,
//! so a file written before them still reads; `shardline up` fills them in
//! (creating the certificates) the next time it starts that cluster.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use shardline_rpc::{Role, Tls, TlsFiles};
use shardline_types::Layout;

/// Current format version of cluster.toml.
pub const CLUSTER_FILE_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterFile {
    /// Format version of this file.
    pub version: u32,
    /// Erasure code of the root directory's layout, "K+M".
    pub ec: String,
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// Placement groups in the map.
    pub pg_count: u32,
    /// The key-encryption key file (mode 0600), absolute: a keyring of KEK
    /// versions (`admin keys rotate` adds one).
    pub key_file: PathBuf,
    /// A command (argv, no shell) printing the keyring's text, used by
    /// clients instead of `key_file` (a KMS helper); optional, so files
    /// without it still read. `admin keys` works on `key_file` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_command: Option<Vec<String>>,
    /// Seconds `key_command` may run before it is killed and the client
    /// refuses to start (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_command_timeout_s: Option<u64>,
    /// Metadata servers.
    pub meta: Vec<Node>,
    /// Data servers.
    pub data: Vec<Node>,
    /// Certificates for clients and operators, and the CA (absent in files
    /// written before TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSection>,
    /// Clients of this file store a file of at most this many bytes as
    /// m+1 copies of its one chunk instead of k+m cells (one shard get per
    /// cold read; twice the raw space under 4+2). Absent: the client's
    /// default, 128 KiB; 0: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub small_file_max: Option<u64>,
}

/// The TLS files a cluster's clients and operators use.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TlsSection {
    /// The cluster CA certificate (PEM).
    pub ca: PathBuf,
    /// The CA's revocation list (PEM), which servers re-read when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl: Option<PathBuf>,
    /// The certificate and key (PEM, key 0600) file commands, mounts and
    /// the native client present: role `client`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
    /// The certificate and key `shardline admin` presents: role `admin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_key: Option<PathBuf>,
    /// Clients offer data servers the integrity-only transport (shards
    /// authenticated, not encrypted again); see docs/security.md.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub data_integrity_only: bool,
}

/// One server of the cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Node {
    /// Server id (1-based, unique per kind).
    pub id: u64,
    /// Address it listens on.
    pub addr: String,
    /// Its folder.
    pub dir: PathBuf,
    /// Its certificate (role `meta` or `data`, naming `id`) and key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

impl Node {
    /// The `--tls-*` flags that start this server with its certificate.
    pub fn tls_args(&self, tls: &TlsSection) -> Result<Vec<std::ffi::OsString>> {
        let (Some(cert), Some(key)) = (&self.cert, &self.key) else {
            bail!("cluster.toml names no certificate for server {} ({})", self.id, self.addr)
        };
        let mut args: Vec<std::ffi::OsString> = vec![
            "--tls-cert".into(),
            cert.into(),
            "--tls-key".into(),
            key.into(),
            "--tls-ca".into(),
            tls.ca.clone().into(),
        ];
        if let Some(crl) = &tls.crl {
            args.extend(["--tls-crl".into(), crl.into()]);
        }
        Ok(args)
    }
}

impl ClusterFile {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("read cluster file {}", path.display()))?;
        let file: ClusterFile =
            toml::from_str(&text).with_context(|| format!("parse cluster file {}", path.display()))?;
        file.validate().with_context(|| format!("check cluster file {}", path.display()))?;
        Ok(file)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let text = format!(
            "# Written by `shardline up`. Clients use it via --cluster or SHARDLINE_CLUSTER.\n{}",
            toml::to_string_pretty(self)?
        );
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("rename into {}", path.display()))?;
        Ok(())
    }

    pub fn validate(&self) -> Result<()> {
        if self.version != CLUSTER_FILE_VERSION {
            bail!("unsupported cluster file version {} (this build reads {})", self.version, CLUSTER_FILE_VERSION);
        }
        self.layout()?;
        if self.meta.is_empty() {
            bail!("no metadata servers listed");
        }
        if let Some(s) = self.key_command_timeout_s.filter(|s| !(1..=3600).contains(s)) {
            bail!("key_command_timeout_s = {s}: give 1 to 3600 seconds");
        }
        Ok(())
    }

    pub fn layout(&self) -> Result<Layout> {
        let l = Layout { chunk_size: self.chunk_size, ..Layout::default() }.with_ec(&self.ec)?;
        Ok(l)
    }

    /// The TLS identity of `role` (client or admin) this file names.
    pub fn identity(&self, role: Role) -> Result<Arc<Tls>> {
        let Some(tls) = &self.tls else {
            bail!(
                "the cluster file names no TLS certificates (it predates TLS): start the cluster once with \
                 `shardline up` to create them, or add a [tls] section (see `shardline admin certs`)"
            )
        };
        let (cert, key) = match role {
            Role::Admin => (&tls.admin_cert, &tls.admin_key),
            _ => (&tls.client_cert, &tls.client_key),
        };
        let (Some(cert), Some(key)) = (cert, key) else {
            bail!("the cluster file names no {role} certificate ([tls] {role}_cert and {role}_key)")
        };
        let files = TlsFiles { cert: cert.clone(), key: key.clone(), ca: tls.ca.clone(), crl: tls.crl.clone() };
        Tls::load(&files).with_context(|| format!("load the {role} certificate"))
    }

    /// A native client configuration for this cluster, as `role`.
    pub fn client_config(&self, role: Role) -> Result<shardline_client::ClientConfig> {
        let mut cfg =
            shardline_client::ClientConfig::new(self.meta_addrs(), self.key_file.clone(), self.identity(role)?);
        cfg.data_integrity_only = self.tls.as_ref().is_some_and(|t| t.data_integrity_only);
        cfg.key_command = self.key_command.clone();
        cfg.key_command_timeout = self.key_command_timeout_s.map(std::time::Duration::from_secs);
        if let Some(max) = self.small_file_max {
            cfg.small_file_max = max;
        }
        Ok(cfg)
    }

    pub fn meta_addrs(&self) -> Vec<String> {
        self.meta.iter().map(|n| n.addr.clone()).collect()
    }

    pub fn peers_arg(&self) -> String {
        self.meta.iter().map(|n| format!("{}={}", n.id, n.addr)).collect::<Vec<_>>().join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cluster.toml as `shardline up` wrote it before TLS.
    const BEFORE_TLS: &str = r#"
version = 1
ec = "4+2"
chunk_size = 65536
pg_count = 64
key_file = "/x/kek.key"

[[meta]]
id = 1
addr = "127.0.0.1:7000"
dir = "/x/meta-1"

[[data]]
id = 1
addr = "127.0.0.1:7100"
dir = "/x/data-1"
"#;

    #[test]
    fn a_file_written_before_tls_still_reads_and_says_what_is_missing() {
        let file: ClusterFile = toml::from_str(BEFORE_TLS).unwrap();
        file.validate().unwrap();
        assert!(file.tls.is_none() && file.meta[0].cert.is_none());
        let err = file.identity(Role::Client).unwrap_err().to_string();
        assert!(err.contains("names no TLS certificates"), "{err}");
        assert!(file.meta[0].tls_args(&TlsSection::default()).is_err());
    }

    #[test]
    fn tls_fields_round_trip() {
        let mut file: ClusterFile = toml::from_str(BEFORE_TLS).unwrap();
        file.tls = Some(TlsSection {
            ca: "/x/certs/ca.pem".into(),
            crl: Some("/x/certs/crl.pem".into()),
            client_cert: Some("/x/certs/client.pem".into()),
            client_key: Some("/x/certs/client.key".into()),
            admin_cert: None,
            admin_key: None,
            data_integrity_only: false,
        });
        file.meta[0].cert = Some("/x/certs/meta-1.pem".into());
        file.meta[0].key = Some("/x/certs/meta-1.key".into());
        let text = toml::to_string_pretty(&file).unwrap();
        let back: ClusterFile = toml::from_str(&text).unwrap();
        let tls = back.tls.as_ref().unwrap();
        assert_eq!(tls.crl.as_deref(), Some(Path::new("/x/certs/crl.pem")));
        let args = back.meta[0].tls_args(tls).unwrap();
        assert_eq!(args.len(), 8);
        let err = back.identity(Role::Admin).unwrap_err().to_string();
        assert!(err.contains("no admin certificate"), "{err}");
    }
}
