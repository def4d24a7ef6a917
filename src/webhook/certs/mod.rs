//! Serving certificates of the webhook.
//!
//! - this file: rcgen generation of a CA and serving certificates, their validity, and what is
//!   due for renewal (self-managed mode);
//! - [`store`]: the served certificate, swapped while the server runs, loaded from PEM and
//!   reloaded from files (cert-manager mode);
//! - [`secret`]: the self-managed certificates in a Secret shared by replicas, and the CA in
//!   `caBundle` of Annexa's webhook configurations;
//! - [`pem`]: PEM text of certificates (the `pem` crate);
//! - [`CertError`]: what can go wrong, one variant per step.

mod error;
pub mod pem;
pub mod secret;
pub mod store;

pub use error::CertError;

pub use secret::{
    CertificateConfig, bundle_from_secret, ca_bundle_patch, ensure_certificates, patch_ca_bundles,
    secret_data, spawn_certificate_rotation, start_certificates,
};
pub use store::{CertStore, LoadedCert, load_files, load_pem, spawn_file_reload};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::CertificateDer;
use std::time::Duration;

type Result<T, E = CertError> = std::result::Result<T, E>;

/// Default lifetimes: CA 10 years, serving certificate 1 year, rotated at two thirds.
pub const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);
pub const SERVING_LIFETIME: Duration = Duration::from_secs(365 * 86_400);

/// notBefore and notAfter (unix seconds) of a DER certificate.
pub fn validity_of_der(der: &[u8]) -> Result<(i64, i64)> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|source| CertError::Parse { source })?;
    let validity = cert.validity();
    Ok((
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    ))
}

/// The DER blocks of every CERTIFICATE in a stored PEM text; none when it does not decode (a
/// stored text that is unreadable counts as missing: renewal writes a fresh one).
fn pem_certificates(text: &str) -> Vec<CertificateDer<'static>> {
    pem::certificates(text.as_bytes()).unwrap_or_default()
}

/// DNS names in the subjectAltName of a DER certificate.
fn dns_names_of_der(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        })
        .collect()
}

/// DNS names of the webhook Service: `SERVICE.NAMESPACE.svc` is what the API server dials.
pub fn service_dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        format!("{service}.{namespace}"),
        service.to_string(),
    ]
}

/// A CA or serving certificate with its key, PEM encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PemPair {
    pub cert: String,
    pub key: String,
}

fn offset(unix_seconds: i64) -> Result<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(unix_seconds)
        .map_err(|source| CertError::Time { source })
}

fn generating(what: &'static str) -> impl Fn(rcgen::Error) -> CertError {
    move |source| CertError::Generate { what, source }
}

fn signing(what: &'static str) -> impl Fn(rcgen::Error) -> CertError {
    move |source| CertError::Sign { what, source }
}

fn reading_back(what: &'static str) -> impl Fn(rcgen::Error) -> CertError {
    move |source| CertError::ReadBack { what, source }
}

/// Tolerated clock skew between the webhook and the API server.
const SKEW_SECS: i64 = 300;

/// Generates a self-signed CA valid from `now` for `lifetime`.
pub fn generate_ca(now: i64, lifetime: Duration) -> Result<PemPair> {
    let key = KeyPair::generate().map_err(generating("CA key"))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    // The timestamp tells CAs apart while the old and the new one are both trusted.
    dn.push(DnType::CommonName, format!("annexa-webhook-ca-{now}"));
    dn.push(DnType::OrganizationName, "Annexa");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = offset(now - SKEW_SECS)?;
    params.not_after = offset(now.saturating_add(lifetime.as_secs() as i64))?;
    let cert = params
        .self_signed(&key)
        .map_err(signing("CA certificate"))?;
    Ok(PemPair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// Issues a serving certificate for `dns_names`, signed by `ca`.
pub fn issue_serving(
    ca: &PemPair,
    dns_names: &[String],
    now: i64,
    lifetime: Duration,
) -> Result<PemPair> {
    let ca_key = KeyPair::from_pem(&ca.key).map_err(reading_back("CA key"))?;
    let issuer =
        Issuer::from_ca_cert_pem(&ca.cert, ca_key).map_err(reading_back("CA certificate"))?;
    let key = KeyPair::generate().map_err(generating("serving key"))?;
    let mut params =
        CertificateParams::new(dns_names.to_vec()).map_err(generating("serving names"))?;
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        dns_names
            .first()
            .cloned()
            .unwrap_or_else(|| "annexa-webhook".into()),
    );
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = offset(now - SKEW_SECS)?;
    params.not_after = offset(now.saturating_add(lifetime.as_secs() as i64))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(signing("serving certificate"))?;
    Ok(PemPair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// Everything the self-managed mode keeps (in a Secret shared by replicas).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertBundle {
    /// The CA that signs the current serving certificate.
    pub ca: PemPair,
    /// The serving certificate (leaf only) and key.
    pub serving: PemPair,
    /// Every CA the API server must trust: the current one first, then the previous one until
    /// it expires (so replicas still serving a certificate from it stay trusted during a switch).
    pub ca_bundle: String,
}

/// Lifetimes for generated certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetimes {
    pub ca: Duration,
    pub serving: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            ca: CA_LIFETIME,
            serving: SERVING_LIFETIME,
        }
    }
}

/// Whether a certificate valid from `not_before` to `not_after` is due for rotation at `now`:
/// two thirds of its lifetime have passed.
pub fn rotation_due(not_before: i64, not_after: i64, now: i64) -> bool {
    let lifetime = not_after.saturating_sub(not_before).max(0);
    now >= not_before.saturating_add(lifetime / 3 * 2)
}

fn pem_validity(pem: &str) -> Option<(i64, i64)> {
    pem_certificates(pem)
        .first()
        .and_then(|der| validity_of_der(der).ok())
}

/// What to store next: `None` when `existing` is valid and not due, else a renewed bundle.
/// - nothing stored, or unreadable: a new CA and serving certificate;
/// - CA due: a new CA, a serving certificate from it, and the old CA kept in the bundle;
/// - serving certificate due, or for other names: a new one from the current CA.
pub fn renew(
    existing: Option<&CertBundle>,
    dns_names: &[String],
    now: i64,
    lifetimes: Lifetimes,
) -> Result<Option<CertBundle>> {
    let fresh = || -> Result<CertBundle> {
        let ca = generate_ca(now, lifetimes.ca)?;
        let serving = issue_serving(&ca, dns_names, now, lifetimes.serving)?;
        Ok(CertBundle {
            ca_bundle: ca.cert.clone(),
            ca,
            serving,
        })
    };
    let Some(existing) = existing else {
        return fresh().map(Some);
    };
    let (Some(ca_validity), Some(serving_validity)) = (
        pem_validity(&existing.ca.cert),
        pem_validity(&existing.serving.cert),
    ) else {
        return fresh().map(Some);
    };
    // Keep trusted CAs that are still valid.
    let still_valid = |pem: &str| -> Vec<String> {
        pem_certificates(pem)
            .iter()
            .filter(|der| validity_of_der(der).is_ok_and(|(_, not_after)| not_after > now))
            .map(|der| pem::encode_certificate(der))
            .collect()
    };
    if rotation_due(ca_validity.0, ca_validity.1, now) {
        let ca = generate_ca(now, lifetimes.ca)?;
        let serving = issue_serving(&ca, dns_names, now, lifetimes.serving)?;
        let mut bundle = vec![ca.cert.clone()];
        bundle.extend(still_valid(&existing.ca.cert));
        return Ok(Some(CertBundle {
            ca,
            serving,
            ca_bundle: bundle.concat(),
        }));
    }
    let names_differ = {
        let mut have = pem_certificates(&existing.serving.cert)
            .first()
            .map(|d| dns_names_of_der(d))
            .unwrap_or_default();
        let mut want = dns_names.to_vec();
        have.sort();
        want.sort();
        have != want
    };
    if rotation_due(serving_validity.0, serving_validity.1, now) || names_differ {
        let serving = issue_serving(&existing.ca, dns_names, now, lifetimes.serving)?;
        let mut bundle = still_valid(&existing.ca_bundle);
        let ca_der = pem_certificates(&existing.ca.cert);
        if !pem_certificates(&existing.ca_bundle)
            .iter()
            .any(|d| ca_der.contains(d))
        {
            bundle.insert(0, existing.ca.cert.clone());
        }
        return Ok(Some(CertBundle {
            ca: existing.ca.clone(),
            serving,
            ca_bundle: bundle.concat(),
        }));
    }
    Ok(None)
}

impl CertBundle {
    /// The serving certificate, ready for the server.
    pub fn loaded(&self) -> Result<LoadedCert> {
        load_pem(self.serving.cert.as_bytes(), self.serving.key.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_760_000_000;
    const DAY: i64 = 86_400;

    fn names() -> Vec<String> {
        service_dns_names("annexa-webhook", "annexa-system")
    }

    #[test]
    fn generated_certificates_load_and_carry_the_service_names() {
        let bundle = renew(None, &names(), NOW, Lifetimes::default())
            .unwrap()
            .unwrap();
        let loaded = bundle.loaded().unwrap();
        assert_eq!(loaded.not_after, NOW + 365 * DAY);
        let der = &pem_certificates(&bundle.serving.cert)[0];
        assert_eq!(dns_names_of_der(der), names());
        assert_eq!(pem_validity(&bundle.ca.cert).unwrap().1, NOW + 3650 * DAY);
        assert_eq!(bundle.ca_bundle, bundle.ca.cert);
    }

    #[test]
    fn rotates_at_two_thirds_of_the_lifetime() {
        assert!(!rotation_due(0, 300, 199));
        assert!(rotation_due(0, 300, 200));
        let lifetimes = Lifetimes::default();
        let bundle = renew(None, &names(), NOW, lifetimes).unwrap().unwrap();
        // Not due before two thirds of a year.
        assert_eq!(
            renew(Some(&bundle), &names(), NOW + 240 * DAY, lifetimes).unwrap(),
            None
        );
        // Serving certificate due: same CA, new leaf, bundle unchanged.
        let renewed = renew(Some(&bundle), &names(), NOW + 245 * DAY, lifetimes)
            .unwrap()
            .unwrap();
        assert_eq!(renewed.ca, bundle.ca);
        assert_ne!(renewed.serving, bundle.serving);
        assert_eq!(
            pem_certificates(&renewed.ca_bundle),
            pem_certificates(&bundle.ca.cert)
        );
        // Other names: reissued.
        let other = service_dns_names("other", "annexa-system");
        assert!(
            renew(Some(&bundle), &other, NOW + DAY, lifetimes)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn ca_rotation_keeps_the_old_ca_trusted() {
        let lifetimes = Lifetimes {
            ca: Duration::from_secs(30 * DAY as u64),
            serving: Duration::from_secs(10 * DAY as u64),
        };
        let bundle = renew(None, &names(), NOW, lifetimes).unwrap().unwrap();
        let later = NOW + 21 * DAY;
        let renewed = renew(Some(&bundle), &names(), later, lifetimes)
            .unwrap()
            .unwrap();
        assert_ne!(renewed.ca, bundle.ca);
        let trusted = pem_certificates(&renewed.ca_bundle);
        assert_eq!(trusted.len(), 2);
        assert_eq!(trusted[0], pem_certificates(&renewed.ca.cert)[0]);
        assert_eq!(trusted[1], pem_certificates(&bundle.ca.cert)[0]);
        // Once the old CA has expired it leaves the bundle.
        let much_later = NOW + 31 * DAY;
        let again = renew(Some(&renewed), &names(), much_later, lifetimes)
            .unwrap()
            .unwrap();
        assert_eq!(
            pem_certificates(&again.ca_bundle),
            pem_certificates(&renewed.ca.cert)
        );
    }

    #[test]
    fn garbage_is_replaced() {
        let junk = CertBundle {
            ca: PemPair {
                cert: "junk".into(),
                key: "junk".into(),
            },
            serving: PemPair {
                cert: "junk".into(),
                key: "junk".into(),
            },
            ca_bundle: String::new(),
        };
        assert!(
            renew(Some(&junk), &names(), NOW, Lifetimes::default())
                .unwrap()
                .is_some()
        );
        assert!(load_pem(b"junk", b"junk").is_err());
    }

    #[test]
    fn a_key_from_another_certificate_is_refused() {
        let a = renew(None, &names(), NOW, Lifetimes::default())
            .unwrap()
            .unwrap();
        let b = renew(None, &names(), NOW, Lifetimes::default())
            .unwrap()
            .unwrap();
        let err = load_pem(a.serving.cert.as_bytes(), b.serving.key.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("do not fit together"), "{err}");
    }
}
