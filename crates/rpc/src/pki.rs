//! The cluster CA: generating it, issuing role certificates, and the
//! certificate revocation list (CRL) servers load.
//!
//! Keys are ECDSA P-256. The CA certificate may sign certificates and CRLs
//! only. Each issued certificate carries its role URI (and node ids) as
//! subject alternative names (see [`crate::principal`]); server roles also
//! carry their kind's DNS name and may act as TLS servers and clients,
//! client and admin certificates as TLS clients only. Serial numbers are
//! random (positive, 128 bits), so a revoked list names certificates
//! unambiguously.

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams,
    SanType, SerialNumber,
};
use time::OffsetDateTime;

use crate::principal::{Role, UserMap};

/// A PKI failure (bad PEM, a signing error).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PkiError(pub String);

fn err(what: &str) -> impl FnOnce(rcgen::Error) -> PkiError + '_ {
    move |e| PkiError(format!("{what}: {e}"))
}

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    /// The certificate's serial number, lowercase hex (for revocation).
    pub serial_hex: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").field("serial_hex", &self.serial_hex).finish_non_exhaustive()
    }
}

/// What to put in a certificate.
#[derive(Debug, Clone)]
pub struct CertSpec {
    pub role: Role,
    /// Node ids (metadata and data servers; a data server running several
    /// targets has one per target). Must be empty for client and admin.
    pub ids: Vec<u64>,
    /// Common name, for logs (e.g. "data-3", "alice").
    pub name: String,
    /// How long the certificate is valid from now.
    pub valid_for: Duration,
    /// The POSIX identity a client certificate acts as (client only).
    pub user: UserMap,
}

/// The cluster's certificate authority: its certificate and signing key.
pub struct ClusterCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl ClusterCa {
    /// A new CA named `name`, valid for `valid_for`.
    pub fn generate(name: &str, valid_for: Duration) -> Result<(ClusterCa, String), PkiError> {
        let key = KeyPair::generate().map_err(err("generate the CA key"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(random_serial());
        (params.not_before, params.not_after) = validity(valid_for);
        let cert = params.self_signed(&key).map_err(err("self-sign the CA certificate"))?;
        let key_pem = key.serialize_pem();
        let cert_pem = cert.pem();
        let issuer = Issuer::new(params, key);
        Ok((ClusterCa { cert_pem, issuer }, key_pem))
    }

    /// The CA from its certificate and key (PEM), as `generate` wrote them.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<ClusterCa, PkiError> {
        let key = KeyPair::from_pem(key_pem).map_err(err("read the CA key"))?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(err("read the CA certificate"))?;
        Ok(ClusterCa { cert_pem: cert_pem.to_string(), issuer })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issue a certificate (with a fresh key) for `spec`.
    pub fn issue(&self, spec: &CertSpec) -> Result<Issued, PkiError> {
        match (spec.role.has_ids(), spec.ids.is_empty()) {
            (true, true) => return Err(PkiError(format!("a {} certificate needs a node id", spec.role))),
            (false, false) => return Err(PkiError(format!("a {} certificate takes no node id", spec.role))),
            _ => {}
        }
        let key = KeyPair::generate().map_err(err("generate a key"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(&spec.name);
        let uri = |id: Option<u64>| {
            rcgen::string::Ia5String::try_from(spec.role.uri(id))
                .map(SanType::URI)
                .map_err(|e| PkiError(format!("role URI: {e}")))
        };
        if spec.ids.is_empty() {
            params.subject_alt_names.push(uri(None)?);
        }
        for id in &spec.ids {
            params.subject_alt_names.push(uri(Some(*id))?);
        }
        if spec.user.restricts_anything() && spec.role != Role::Client {
            return Err(PkiError(format!(
                "a {} certificate cannot carry a uid/gid mapping, root squash, groups or a path",
                spec.role
            )));
        }
        for u in spec.user.uris() {
            let u = rcgen::string::Ia5String::try_from(u).map_err(|e| PkiError(format!("user URI: {e}")))?;
            params.subject_alt_names.push(SanType::URI(u));
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if let Some(dns) = spec.role.server_name() {
            let dns = rcgen::string::Ia5String::try_from(dns).map_err(|e| PkiError(format!("DNS name: {e}")))?;
            params.subject_alt_names.push(SanType::DnsName(dns));
            params.extended_key_usages.push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let serial = random_serial();
        let serial_hex = hex(serial.as_ref());
        params.serial_number = Some(serial);
        (params.not_before, params.not_after) = validity(spec.valid_for);
        let cert = params.signed_by(&key, &self.issuer).map_err(err("sign the certificate"))?;
        Ok(Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem(), serial_hex })
    }

    /// A CRL revoking `serials_hex` (lowercase hex), numbered `number`
    /// (increasing with each list), valid for `valid_for`.
    pub fn crl(&self, serials_hex: &[String], number: u64, valid_for: Duration) -> Result<String, PkiError> {
        let now = OffsetDateTime::now_utc();
        let revoked_certs = serials_hex
            .iter()
            .map(|s| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&unhex(s)?),
                    revocation_time: now,
                    reason_code: Some(RevocationReason::Unspecified),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, PkiError>>()?;
        let params = CertificateRevocationListParams {
            this_update: now - time::Duration::minutes(5),
            next_update: now + valid_for,
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer).map_err(err("sign the revocation list"))?;
        crl.pem().map_err(err("encode the revocation list"))
    }
}

fn dn(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Shardline");
    dn.push(DnType::CommonName, name);
    dn
}

/// From five minutes ago (clock skew between machines) to `valid_for` on.
fn validity(valid_for: Duration) -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (now - time::Duration::minutes(5), now + valid_for)
}

fn random_serial() -> SerialNumber {
    let mut b: [u8; 16] = rand::random();
    b[0] &= 0x7f; // positive
    b[0] |= 0x01; // no leading zero byte, so the DER form is these 16 bytes
    SerialNumber::from_slice(&b)
}

/// Lowercase hex of a serial number.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Result<Vec<u8>, PkiError> {
    let s = s.trim();
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return Err(PkiError(format!("serial {s:?} is not an even number of hex digits")));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| PkiError(format!("serial {s:?} is not hex"))))
        .collect()
}

/// The serial number (lowercase hex) of a PEM certificate.
pub fn serial_of(cert_pem: &str) -> Result<String, PkiError> {
    let der = crate::tls::certs_from_pem(cert_pem.as_bytes())
        .map_err(|e| PkiError(e.to_string()))?
        .into_iter()
        .next()
        .ok_or_else(|| PkiError("no certificate in the PEM text".into()))?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| PkiError(format!("parse the certificate: {e}")))?;
    Ok(hex(cert.raw_serial()))
}

/// An in-memory cluster PKI for tests: a CA and certificates on demand.
pub struct TestPki {
    pub ca: ClusterCa,
}

impl TestPki {
    pub fn new() -> Result<TestPki, PkiError> {
        Ok(TestPki { ca: ClusterCa::generate("test cluster CA", Duration::from_secs(86_400))?.0 })
    }

    /// A TLS identity of `role` (with `ids`), trusting this CA.
    pub fn identity(&self, role: Role, ids: &[u64]) -> Result<std::sync::Arc<crate::tls::Tls>, PkiError> {
        self.identity_with(role, ids, false)
    }

    /// As [`TestPki::identity`]; a server identity that accepts the
    /// integrity-only transport when `accept_integrity_only`.
    pub fn identity_with(
        &self,
        role: Role,
        ids: &[u64],
        accept_integrity_only: bool,
    ) -> Result<std::sync::Arc<crate::tls::Tls>, PkiError> {
        let spec = CertSpec {
            role,
            ids: ids.to_vec(),
            name: format!("{role}-test"),
            valid_for: Duration::from_secs(86_400),
            user: UserMap::default(),
        };
        let issued = self.ca.issue(&spec)?;
        let cert = Some((issued.cert_pem.as_str(), issued.key_pem.as_str()));
        crate::tls::Tls::from_pem_with(cert, self.ca.cert_pem(), None, accept_integrity_only)
            .map_err(|e| PkiError(e.to_string()))
    }
}

/// A self-signed certificate naming `role` (no CA vouches for it): what an
/// outsider might present. For tests of refusal.
pub fn self_signed(role: Role) -> Result<Issued, PkiError> {
    let key = KeyPair::generate().map_err(err("generate a key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = dn("self-signed");
    let uri = rcgen::string::Ia5String::try_from(role.uri(Some(1))).map_err(|e| PkiError(format!("role URI: {e}")))?;
    params.subject_alt_names.push(SanType::URI(uri));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let serial = random_serial();
    let serial_hex = hex(serial.as_ref());
    params.serial_number = Some(serial);
    (params.not_before, params.not_after) = validity(Duration::from_secs(3600));
    let cert = params.self_signed(&key).map_err(err("self-sign"))?;
    Ok(Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem(), serial_hex })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::Principal;

    #[test]
    fn issued_certificates_carry_their_role_and_ids() {
        let (ca, _) = ClusterCa::generate("ca", Duration::from_secs(3600)).unwrap();
        let spec = CertSpec {
            role: Role::Data,
            ids: vec![7, 8],
            name: "data-7".into(),
            valid_for: Duration::from_secs(60),
            user: UserMap::default(),
        };
        let issued = ca.issue(&spec).unwrap();
        let der = crate::tls::certs_from_pem(issued.cert_pem.as_bytes()).unwrap();
        let p = Principal::from_cert_der(&der[0]).unwrap();
        assert_eq!((p.role, p.ids.as_slice(), p.name.as_str()), (Role::Data, &[7, 8][..], "data-7"));
        assert_eq!(serial_of(&issued.cert_pem).unwrap(), issued.serial_hex);
        let client = CertSpec {
            role: Role::Client,
            ids: vec![],
            name: "alice".into(),
            valid_for: Duration::from_secs(60),
            user: UserMap::default(),
        };
        let p = Principal::from_cert_der(
            &crate::tls::certs_from_pem(ca.issue(&client).unwrap().cert_pem.as_bytes()).unwrap()[0],
        )
        .unwrap();
        assert_eq!((p.role, p.ids.len()), (Role::Client, 0));
        assert!(ca.issue(&CertSpec { ids: vec![], ..spec.clone() }).is_err(), "a data cert without an id");
        assert!(ca.issue(&CertSpec { ids: vec![1], ..client }).is_err(), "a client cert with an id");
    }

    #[test]
    fn a_reloaded_ca_issues_certificates_that_chain_to_it() {
        let (ca, key_pem) = ClusterCa::generate("ca", Duration::from_secs(3600)).unwrap();
        let again = ClusterCa::load(ca.cert_pem(), &key_pem).unwrap();
        let spec = CertSpec {
            role: Role::Admin,
            ids: vec![],
            name: "op".into(),
            valid_for: Duration::from_secs(60),
            user: UserMap::default(),
        };
        let issued = again.issue(&spec).unwrap();
        crate::tls::Tls::from_pem(Some((&issued.cert_pem, &issued.key_pem)), ca.cert_pem(), None).unwrap();
        let crl = again.crl(std::slice::from_ref(&issued.serial_hex), 2, Duration::from_secs(60)).unwrap();
        assert!(crl.contains("BEGIN X509 CRL"));
        assert!(unhex("abc").is_err() && unhex("zz").is_err());
    }
}
