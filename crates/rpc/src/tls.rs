//! Mutual TLS (rustls, TLS 1.3 only, ring) for every connection.
//!
//! A process has one [`Tls`]: its certificate and key, the cluster CA it
//! trusts, and optionally the CA's revocation list (CRL). Servers require a
//! client certificate that chains to the CA, is not revoked and names a
//! Shardline role ([`Principal`]); clients check that the server's
//! certificate chains to the CA, is not revoked and carries the DNS name of
//! the kind of server they meant to reach ([`Role::server_name`]), so
//! addresses (proxies, NAT) do not matter but roles do.
//!
//! rustls reads the socket 4 KiB at a time; a buffer under it
//! ([`Socket`]) turns that into one system call per 256 KiB of bulk data.
//!
//! The CRL file is re-read when it changes (checked at each handshake), so
//! `shardline admin certs revoke` takes effect on the next connection
//! without a restart. Session resumption is off: every connection does a
//! full handshake and every handshake sees the current CRL.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::integrity::{Keys, MacStream, ALPN_INTEGRITY, ALPN_TLS, GO};
use crate::principal::{Principal, Role};

/// The TCP stream under TLS: reads buffered (see the module doc), writes
/// passed straight through.
pub type Socket = tokio::io::BufReader<TcpStream>;
/// A connection this process dialed.
pub type ClientStream = Transport<tokio_rustls::client::TlsStream<Socket>>;
/// A connection this process accepted.
pub type ServerStream = Transport<tokio_rustls::server::TlsStream<Socket>>;

/// A connection after its handshake: TLS throughout (the default), or the
/// integrity-only records both sides opted into (`integrity.rs`).
pub enum Transport<T> {
    Tls(Box<T>),
    IntegrityOnly(Box<MacStream<Socket>>),
}

impl<T> Transport<T> {
    /// Whether the bytes on this connection travel unencrypted (authenticated).
    pub fn is_integrity_only(&self) -> bool {
        matches!(self, Transport::IntegrityOnly(_))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Transport<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
            Transport::IntegrityOnly(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Transport<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
            Transport::IntegrityOnly(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
            Transport::IntegrityOnly(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
            Transport::IntegrityOnly(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

/// Read buffer under TLS: rustls's 4 KiB reads are served from it.
const SOCKET_READ_BUFFER: usize = 256 << 10;

/// A TLS set-up failure (files, PEM, configuration).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

/// Where a process's certificate, key, CA and CRL live.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// This process's certificate (PEM; may be followed by intermediates).
    pub cert: PathBuf,
    /// Its private key (PEM, mode 0600).
    pub key: PathBuf,
    /// The cluster CA certificate (PEM).
    pub ca: PathBuf,
    /// The CA's revocation list (PEM), re-read when it changes.
    pub crl: Option<PathBuf>,
}

/// The built rustls configurations and the CRL they were built with.
struct Built {
    crl_stamp: Option<(SystemTime, u64)>,
    server: Option<Arc<rustls::ServerConfig>>,
    client: Arc<rustls::ClientConfig>,
    /// The same, offering the integrity-only transport first.
    client_integrity: Arc<rustls::ClientConfig>,
}

/// What the configurations are built from.
struct Material {
    chain: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ca: CertificateDer<'static>,
    /// Servers: accept the integrity-only transport from peers that offer it.
    accept_integrity_only: bool,
}

/// One process's TLS identity and trust. Cheap to share behind an `Arc`.
pub struct Tls {
    material: Material,
    crl_file: Option<PathBuf>,
    principal: Option<Principal>,
    built: RwLock<Built>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("principal", &self.principal).field("crl", &self.crl_file).finish()
    }
}

impl Tls {
    /// Load an identity from files.
    pub fn load(files: &TlsFiles) -> Result<Arc<Tls>, TlsError> {
        Tls::load_with(files, false)
    }

    /// As [`Tls::load`]; a server given `accept_integrity_only` lets peers
    /// that offer it use the integrity-only transport (`integrity.rs`).
    pub fn load_with(files: &TlsFiles, accept_integrity_only: bool) -> Result<Arc<Tls>, TlsError> {
        let read = |p: &Path, what: &str| {
            std::fs::read(p).map_err(|e| TlsError(format!("read the {what} {}: {e}", p.display())))
        };
        let chain = certs_from_pem(&read(&files.cert, "certificate")?)
            .map_err(|e| TlsError(format!("{}: {e}", files.cert.display())))?;
        let key = PrivateKeyDer::from_pem_slice(&read(&files.key, "private key")?)
            .map_err(|e| TlsError(format!("{}: no private key: {e}", files.key.display())))?;
        let ca = certs_from_pem(&read(&files.ca, "CA certificate")?)
            .map_err(|e| TlsError(format!("{}: {e}", files.ca.display())))?
            .remove(0);
        Tls::build(Material { chain: Some((chain, key)), ca, accept_integrity_only }, files.crl.clone(), None)
    }

    /// An identity from PEM text (`cert` = (certificate, key); None: a
    /// client without a certificate, which servers refuse — for tests).
    pub fn from_pem(cert: Option<(&str, &str)>, ca_pem: &str, crl_pem: Option<&str>) -> Result<Arc<Tls>, TlsError> {
        Tls::from_pem_with(cert, ca_pem, crl_pem, false)
    }

    /// As [`Tls::from_pem`], with [`Tls::load_with`]'s choice.
    pub fn from_pem_with(
        cert: Option<(&str, &str)>,
        ca_pem: &str,
        crl_pem: Option<&str>,
        accept_integrity_only: bool,
    ) -> Result<Arc<Tls>, TlsError> {
        let chain = match cert {
            Some((c, k)) => Some((
                certs_from_pem(c.as_bytes())?,
                PrivateKeyDer::from_pem_slice(k.as_bytes()).map_err(|e| TlsError(format!("no private key: {e}")))?,
            )),
            None => None,
        };
        let ca = certs_from_pem(ca_pem.as_bytes())?.remove(0);
        Tls::build(Material { chain, ca, accept_integrity_only }, None, crl_pem.map(|p| p.as_bytes().to_vec()))
    }

    fn build(material: Material, crl_file: Option<PathBuf>, crl_pem: Option<Vec<u8>>) -> Result<Arc<Tls>, TlsError> {
        let principal = match &material.chain {
            Some((chain, _)) => Some(Principal::from_cert_der(&chain[0]).map_err(TlsError)?),
            None => None,
        };
        let (crl_stamp, crls) = match (&crl_file, crl_pem) {
            (Some(path), _) => read_crl(path)?,
            (None, Some(pem)) => (None, crls_from_pem(&pem)?),
            (None, None) => (None, Vec::new()),
        };
        let built = configs(&material, principal.as_ref(), crls, crl_stamp)?;
        Ok(Arc::new(Tls { material, crl_file, principal, built: RwLock::new(built) }))
    }

    /// Whether this server lets peers use the integrity-only transport
    /// (and so offers it when it dials peers of its own kind).
    pub fn accepts_integrity_only(&self) -> bool {
        self.material.accept_integrity_only
    }

    /// Who this process is (None for an identity without a certificate).
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// The current configurations, rebuilt first if the CRL file changed.
    /// A CRL that fails to load keeps the previous one (and says so).
    fn current(&self) -> (Option<Arc<rustls::ServerConfig>>, Arc<rustls::ClientConfig>, Arc<rustls::ClientConfig>) {
        if let Some(path) = &self.crl_file {
            let stamp = file_stamp(path);
            let stale = self.built.read().unwrap_or_else(|e| e.into_inner()).crl_stamp != stamp;
            if stale {
                match read_crl(path).and_then(|(s, crls)| configs(&self.material, self.principal.as_ref(), crls, s)) {
                    Ok(b) => {
                        tracing::info!(crl = %path.display(), "revocation list reloaded");
                        *self.built.write().unwrap_or_else(|e| e.into_inner()) = b;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot reload the revocation list; keeping the previous one");
                        self.built.write().unwrap_or_else(|e| e.into_inner()).crl_stamp = stamp;
                    }
                }
            }
        }
        let b = self.built.read().unwrap_or_else(|e| e.into_inner());
        (b.server.clone(), b.client.clone(), b.client_integrity.clone())
    }

    /// Dial-side handshake with a server that must hold a `server` certificate.
    pub async fn connect(&self, tcp: TcpStream, server: Role) -> io::Result<ClientStream> {
        self.connect_with(tcp, server, false).await
    }

    /// As [`Tls::connect`]; with `integrity_only`, offer the integrity-only
    /// transport (used when the server accepts it).
    pub async fn connect_with(&self, tcp: TcpStream, server: Role, integrity_only: bool) -> io::Result<ClientStream> {
        let name = server.server_name().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{server} certificates do not serve"))
        })?;
        let name = ServerName::try_from(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let (_, client, client_integrity) = self.current();
        let config = if integrity_only { client_integrity } else { client };
        let socket = tokio::io::BufReader::with_capacity(SOCKET_READ_BUFFER, tcp);
        let mut stream = tokio_rustls::TlsConnector::from(config).connect(name, socket).await?;
        if stream.get_ref().1.alpn_protocol() != Some(ALPN_INTEGRITY) {
            return Ok(Transport::Tls(Box::new(stream)));
        }
        let conn = stream.get_ref().1;
        let keys = Keys::export(|out, label| conn.export_keying_material(out, label, None).map(|_| ()))?;
        // The server's go-ahead, the last TLS record: nothing follows it
        // until this side speaks.
        let mut go = [0u8; 1];
        stream.read_exact(&mut go).await?;
        if go[0] != GO {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "bad integrity-only go-ahead"));
        }
        let (socket, _) = stream.into_inner();
        if !socket.buffer().is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "bytes after the integrity-only go-ahead"));
        }
        Ok(Transport::IntegrityOnly(Box::new(MacStream::new(socket, &keys, true)?)))
    }

    /// Accept-side handshake: the stream and the verified peer.
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<(ServerStream, Principal)> {
        let (server, _, _) = self.current();
        let server = server
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "this identity has no server certificate"))?;
        let socket = tokio::io::BufReader::with_capacity(SOCKET_READ_BUFFER, tcp);
        let mut stream = tokio_rustls::TlsAcceptor::from(server).accept(socket).await?;
        let principal = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or_else(|| io::Error::new(io::ErrorKind::PermissionDenied, "peer sent no certificate"))
            .and_then(|c| {
                Principal::from_cert_der(c).map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e))
            })?;
        if stream.get_ref().1.alpn_protocol() != Some(ALPN_INTEGRITY) {
            return Ok((Transport::Tls(Box::new(stream)), principal));
        }
        let conn = stream.get_ref().1;
        let keys = Keys::export(|out, label| conn.export_keying_material(out, label, None).map(|_| ()))?;
        stream.write_all(&[GO]).await?;
        stream.flush().await?;
        let (socket, _) = stream.into_inner();
        if !socket.buffer().is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "bytes before the integrity-only go-ahead"));
        }
        Ok((Transport::IntegrityOnly(Box::new(MacStream::new(socket, &keys, false)?)), principal))
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn configs(
    m: &Material,
    principal: Option<&Principal>,
    crls: Vec<CertificateRevocationListDer<'static>>,
    crl_stamp: Option<(SystemTime, u64)>,
) -> Result<Built, TlsError> {
    let tls_err = |what: &'static str| move |e: rustls::Error| TlsError(format!("{what}: {e}"));
    let mut roots = RootCertStore::empty();
    roots.add(m.ca.clone()).map_err(tls_err("the CA certificate"))?;
    let roots = Arc::new(roots);
    let server_verifier = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider())
        .with_crls(crls.clone())
        .build()
        .map_err(|e| TlsError(format!("server verifier: {e}")))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err("TLS versions"))?
        .with_webpki_verifier(server_verifier);
    let mut client = match &m.chain {
        Some((chain, key)) => {
            builder.with_client_auth_cert(chain.clone(), key.clone_key()).map_err(tls_err("client certificate"))?
        }
        None => builder.with_no_client_auth(),
    };
    client.resumption = Resumption::disabled();
    client.alpn_protocols = vec![ALPN_TLS.to_vec()];
    let mut client_integrity = client.clone();
    client_integrity.alpn_protocols = vec![ALPN_INTEGRITY.to_vec(), ALPN_TLS.to_vec()];
    let server = match (&m.chain, principal) {
        (Some((chain, key)), Some(p)) if p.role.is_server() => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
                .with_crls(crls)
                .build()
                .map_err(|e| TlsError(format!("client verifier: {e}")))?;
            let mut server = rustls::ServerConfig::builder_with_provider(provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map_err(tls_err("TLS versions"))?
                .with_client_cert_verifier(Arc::new(RequireRole(verifier)))
                .with_single_cert(chain.clone(), key.clone_key())
                .map_err(tls_err("server certificate"))?;
            server.send_tls13_tickets = 0;
            server.alpn_protocols = match m.accept_integrity_only {
                true => vec![ALPN_INTEGRITY.to_vec(), ALPN_TLS.to_vec()],
                false => vec![ALPN_TLS.to_vec()],
            };
            server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
            Some(Arc::new(server))
        }
        _ => None,
    };
    Ok(Built { crl_stamp, server, client: Arc::new(client), client_integrity: Arc::new(client_integrity) })
}

/// The CA's checks, then: the certificate must name a Shardline role.
#[derive(Debug)]
struct RequireRole(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for RequireRole {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.0.verify_client_cert(end_entity, intermediates, now)?;
        if let Err(e) = Principal::from_cert_der(end_entity) {
            tracing::info!(error = %e, "refused a client certificate without a Shardline role");
            return Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

fn file_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let md = std::fs::metadata(path).ok()?;
    Some((md.modified().ok()?, md.len()))
}

#[allow(clippy::type_complexity)]
fn read_crl(path: &Path) -> Result<(Option<(SystemTime, u64)>, Vec<CertificateRevocationListDer<'static>>), TlsError> {
    let stamp = file_stamp(path);
    let pem = std::fs::read(path).map_err(|e| TlsError(format!("read the revocation list {}: {e}", path.display())))?;
    let crls = crls_from_pem(&pem).map_err(|e| TlsError(format!("{}: {e}", path.display())))?;
    Ok((stamp, crls))
}

/// Every certificate in PEM text (at least one).
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("bad certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError("no certificate in the PEM text".into()));
    }
    Ok(certs)
}

fn crls_from_pem(pem: &[u8]) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    CertificateRevocationListDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("bad revocation list PEM: {e}")))
}

/// A rustls failure behind an I/O error, said plainly: which side refused
/// what (for errors shown to people).
pub fn explain(e: &io::Error) -> Option<String> {
    let inner = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(match inner {
        rustls::Error::AlertReceived(alert) => format!("the server refused this connection: TLS alert {alert:?}"),
        rustls::Error::InvalidCertificate(c) => format!("the server's certificate is not trusted: {c:?}"),
        other => format!("TLS: {other}"),
    })
}
