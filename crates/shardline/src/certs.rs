//! The cluster CA on disk and `shardline admin certs init|issue|revoke`;
//! `shardline up` uses the same code to give a local cluster its
//! certificates (under `DIR/certs/`).
//!
//! A certificate folder holds:
//!
//! | file | what |
//! | --- | --- |
//! | `ca.pem` | the CA certificate every process trusts |
//! | `ca.key` | the CA's private key (0600; needed only to issue and revoke) |
//! | `crl.pem` | the CA-signed revocation list servers load (`--tls-crl`) and re-read when it changes |
//! | `revoked.txt` | the serial numbers revoked so far, one per line (`crl.pem` is made from it) |
//!
//! Issued certificates go wherever `--out` says: `PREFIX.pem` and `PREFIX.key` (0600).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use shardline_rpc::pki::{CertSpec, ClusterCa};
use shardline_rpc::{Role, UserMap};

use crate::cluster_file::{ClusterFile, TlsSection};

/// The CA, and the revocation list's next-update date, last this long.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 86_400);

#[derive(Subcommand)]
pub enum CertsCmd {
    /// Create a cluster CA (ca.pem, ca.key 0600) and an empty revocation
    /// list (crl.pem) in a new folder.
    Init {
        /// The certificate folder (default: `certs` beside the cluster file).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The CA's name.
        #[arg(long, default_value = "Shardline cluster CA")]
        name: String,
    },
    /// Issue a certificate for a role: meta and data certificates name the
    /// server's id (a data server running several targets: one --id each).
    Issue {
        #[arg(long)]
        dir: Option<PathBuf>,
        /// meta, data, client or admin.
        #[arg(long)]
        role: String,
        /// The server's id (meta, data; repeatable for data).
        #[arg(long = "id")]
        ids: Vec<u64>,
        /// Common name (default: ROLE or ROLE-ID).
        #[arg(long)]
        name: Option<String>,
        /// Writes OUT.pem and OUT.key (0600).
        #[arg(long)]
        out: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u64,
        /// Client certificates: every request acts as this uid, whatever
        /// it claims (with --gid).
        #[arg(long, requires = "gid")]
        uid: Option<u32>,
        /// Client certificates: the gid that goes with --uid.
        #[arg(long, requires = "uid")]
        gid: Option<u32>,
        /// Client certificates: uid 0 acts as nobody (65534:65534) and
        /// setuid/setgid bits are stripped from modes it sets.
        #[arg(long)]
        root_squash: bool,
        /// Client certificates: supplementary groups for the metadata
        /// service's permission checks (with --uid), comma-separated.
        #[arg(long, requires = "uid", value_delimiter = ',')]
        groups: Vec<u32>,
        /// Client certificates: confine every request to this subtree
        /// (e.g. /projects/a); the metadata service refuses anything outside.
        #[arg(long)]
        path: Option<String>,
    },
    /// Revoke a certificate: add its serial to revoked.txt and re-sign
    /// crl.pem, which servers re-read at their next handshake.
    Revoke {
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The certificate file to revoke.
        #[arg(long, conflicts_with = "serial", required_unless_present = "serial")]
        cert: Option<PathBuf>,
        /// Or its serial number in hex.
        #[arg(long)]
        serial: Option<String>,
    },
}

pub fn run(cmd: CertsCmd, cluster: &Option<PathBuf>) -> Result<()> {
    let default_dir = || crate::cluster_path(cluster).parent().unwrap_or(Path::new(".")).join("certs");
    match cmd {
        CertsCmd::Init { dir, name } => {
            let dir = CertDir(dir.unwrap_or_else(default_dir));
            dir.init(&name)?;
            println!("created the cluster CA in {} (ca.pem, ca.key 0600, crl.pem)", dir.0.display());
        }
        CertsCmd::Issue { dir, role, ids, name, out, days, uid, gid, root_squash, groups, path } => {
            let subtree = match path {
                Some(p) => UserMap::parse_subtree(&p).map_err(anyhow::Error::msg)?,
                None => None,
            };
            let dir = CertDir(dir.unwrap_or_else(default_dir));
            let role =
                Role::parse(&role).with_context(|| format!("unknown role {role:?} (meta, data, client, admin)"))?;
            let name = name.unwrap_or_else(|| match ids.first() {
                Some(id) => format!("{role}-{id}"),
                None => role.to_string(),
            });
            let serial = dir.issue(
                &CertSpec {
                    role,
                    ids,
                    name,
                    valid_for: Duration::from_secs(days.saturating_mul(86_400)),
                    user: UserMap { ids: uid.zip(gid), root_squash, groups, subtree },
                },
                &out,
            )?;
            println!(
                "issued {} and {} (serial {serial})",
                out.with_extension("pem").display(),
                out.with_extension("key").display()
            );
        }
        CertsCmd::Revoke { dir, cert, serial } => {
            let dir = CertDir(dir.unwrap_or_else(default_dir));
            let serial = match (cert, serial) {
                (Some(cert), _) => {
                    let pem = std::fs::read_to_string(&cert).with_context(|| format!("read {}", cert.display()))?;
                    shardline_rpc::pki::serial_of(&pem)?
                }
                (None, Some(s)) => s.trim().to_ascii_lowercase(),
                (None, None) => bail!("name the certificate to revoke: --cert FILE or --serial HEX"),
            };
            let count = dir.revoke(&serial)?;
            println!("revoked serial {serial}; {} now lists {count} certificate(s)", dir.crl().display());
        }
    }
    Ok(())
}

/// A certificate folder (see the module doc).
pub struct CertDir(pub PathBuf);

impl CertDir {
    pub fn ca(&self) -> PathBuf {
        self.0.join("ca.pem")
    }
    fn ca_key(&self) -> PathBuf {
        self.0.join("ca.key")
    }
    pub fn crl(&self) -> PathBuf {
        self.0.join("crl.pem")
    }
    fn revoked(&self) -> PathBuf {
        self.0.join("revoked.txt")
    }

    /// Create the CA; refuses to replace one.
    pub fn init(&self, name: &str) -> Result<()> {
        if self.ca_key().exists() || self.ca().exists() {
            bail!("{} already holds a CA; it is never replaced", self.0.display());
        }
        std::fs::create_dir_all(&self.0).with_context(|| format!("create {}", self.0.display()))?;
        let (ca, key_pem) = ClusterCa::generate(name, CA_VALIDITY)?;
        write_file(&self.ca_key(), key_pem.as_bytes(), 0o600)?;
        write_file(&self.ca(), ca.cert_pem().as_bytes(), 0o644)?;
        write_file(&self.revoked(), b"", 0o644)?;
        self.sign_crl(&ca, &[])
    }

    fn load(&self) -> Result<ClusterCa> {
        let cert = std::fs::read_to_string(self.ca()).with_context(|| format!("read {}", self.ca().display()))?;
        let key = std::fs::read_to_string(self.ca_key())
            .with_context(|| format!("read {} (issuing needs the CA key)", self.ca_key().display()))?;
        Ok(ClusterCa::load(&cert, &key)?)
    }

    /// Issue a certificate into `out`.pem / `out`.key; returns its serial.
    pub fn issue(&self, spec: &CertSpec, out: &Path) -> Result<String> {
        let issued = self.load()?.issue(spec)?;
        write_file(&out.with_extension("key"), issued.key_pem.as_bytes(), 0o600)?;
        write_file(&out.with_extension("pem"), issued.cert_pem.as_bytes(), 0o644)?;
        Ok(issued.serial_hex)
    }

    /// Add `serial` to the revoked list and re-sign the CRL; returns how
    /// many serials it lists.
    pub fn revoke(&self, serial: &str) -> Result<usize> {
        let ca = self.load()?;
        let text = std::fs::read_to_string(self.revoked()).unwrap_or_default();
        let mut serials: Vec<String> =
            text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect();
        if !serials.iter().any(|s| s == serial) {
            serials.push(serial.to_string());
        }
        let mut listed = String::from(
            "# Serial numbers revoked by `shardline admin certs revoke`; crl.pem is made from this list.\n",
        );
        for s in &serials {
            listed.push_str(s);
            listed.push('\n');
        }
        write_file(&self.revoked(), listed.as_bytes(), 0o644)?;
        self.sign_crl(&ca, &serials)?;
        Ok(serials.len())
    }

    fn sign_crl(&self, ca: &ClusterCa, serials: &[String]) -> Result<()> {
        // Numbers only grow: seconds since the epoch.
        let number =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(1);
        let crl = ca.crl(serials, number, CA_VALIDITY)?;
        write_file(&self.crl(), crl.as_bytes(), 0o644)
    }
}

/// Give a local cluster (`shardline up`) its CA and every certificate its
/// file lacks, under `DIR/certs/`; fills in the file's TLS fields. Returns
/// whether anything changed (the file must then be saved).
/// `integrity_only`: whether clients offer data servers the integrity-only transport.
pub fn ensure_local(file: &mut ClusterFile, dir: &Path, integrity_only: bool) -> Result<bool> {
    let certs = CertDir(dir.join("certs"));
    let mut changed = false;
    if !certs.ca().exists() {
        certs.init("Shardline local cluster CA")?;
        changed = true;
    }
    let valid_for = CA_VALIDITY;
    let mut issue = |role: Role, ids: Vec<u64>, stem: String| -> Result<(PathBuf, PathBuf)> {
        let out = certs.0.join(&stem);
        let (pem, key) = (out.with_extension("pem"), out.with_extension("key"));
        if !pem.exists() || !key.exists() {
            certs.issue(&CertSpec { role, ids, name: stem, valid_for, user: UserMap::default() }, &out)?;
            changed = true;
        }
        Ok((pem, key))
    };
    for (role, nodes) in [(Role::Meta, &mut file.meta), (Role::Data, &mut file.data)] {
        for n in nodes.iter_mut() {
            let (pem, key) = issue(role, vec![n.id], format!("{role}-{}", n.id))?;
            (n.cert, n.key) = (Some(pem), Some(key));
        }
    }
    let (client_cert, client_key) = issue(Role::Client, vec![], "client".into())?;
    let (admin_cert, admin_key) = issue(Role::Admin, vec![], "admin".into())?;
    let tls = TlsSection {
        ca: certs.ca(),
        crl: Some(certs.crl()),
        client_cert: Some(client_cert),
        client_key: Some(client_key),
        admin_cert: Some(admin_cert),
        admin_key: Some(admin_key),
        data_integrity_only: integrity_only,
    };
    let before = file.tls.as_ref().map(|t| format!("{t:?}"));
    changed |= before != Some(format!("{tls:?}"));
    file.tls = Some(tls);
    Ok(changed)
}

/// Write `bytes` to `path` atomically (temporary file, rename) with `mode`.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("create {}", tmp.display()))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename into {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn init_issue_revoke_on_disk() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = CertDir(tmp.path().join("certs"));
        dir.init("t").unwrap();
        assert!(dir.init("t").is_err(), "a CA is never replaced");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.ca_key()), 0o600);
        let out = tmp.path().join("alice");
        let spec = CertSpec {
            role: Role::Client,
            ids: vec![],
            name: "alice".into(),
            valid_for: Duration::from_secs(86_400),
            user: UserMap::default(),
        };
        let serial = dir.issue(&spec, &out).unwrap();
        assert_eq!(mode(&out.with_extension("key")), 0o600);
        let pem = std::fs::read_to_string(out.with_extension("pem")).unwrap();
        assert_eq!(shardline_rpc::pki::serial_of(&pem).unwrap(), serial);
        let before = std::fs::read(dir.crl()).unwrap();
        assert_eq!(dir.revoke(&serial).unwrap(), 1);
        assert_eq!(dir.revoke(&serial).unwrap(), 1, "revoking twice lists it once");
        assert_ne!(std::fs::read(dir.crl()).unwrap(), before, "the CRL was re-signed");
        assert!(std::fs::read_to_string(dir.revoked()).unwrap().contains(&serial));
    }
}
