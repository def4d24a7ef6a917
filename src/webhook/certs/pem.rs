//! PEM text of certificates through the `pem` crate: every CERTIFICATE block of a text (a chain
//! or a CA bundle; LF or CRLF line ends; other blocks such as a private key are skipped), and a
//! DER certificate written as one block with LF line ends and 64-character lines.

use super::CertError;
use rustls::pki_types::CertificateDer;

const CERTIFICATE: &str = "CERTIFICATE";

/// The DER certificates of every CERTIFICATE block in `text`, in order. A block that does not
/// decode is an error; a text without blocks gives none (callers decide whether that is one).
pub fn certificates(text: &[u8]) -> Result<Vec<CertificateDer<'static>>, CertError> {
    Ok(pem::parse_many(text)
        .map_err(|source| CertError::Pem { source })?
        .into_iter()
        .filter(|block| block.tag() == CERTIFICATE)
        .map(|block| CertificateDer::from(block.into_contents()))
        .collect())
}

/// One DER certificate as a PEM block.
pub fn encode_certificate(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(CERTIFICATE, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::certs::{CA_LIFETIME, generate_ca};

    fn ca_pem() -> String {
        generate_ca(1_760_000_000, CA_LIFETIME).unwrap().cert
    }

    #[test]
    fn a_bundle_of_certificates_round_trips_in_order() {
        let (a, b) = (ca_pem(), ca_pem());
        let bundle = format!("{a}{b}");
        let ders = certificates(bundle.as_bytes()).unwrap();
        assert_eq!(ders.len(), 2);
        assert_ne!(ders[0], ders[1]);
        // Written back block by block, the text is what rcgen wrote.
        let written: String = ders.iter().map(|d| encode_certificate(d)).collect();
        assert_eq!(written, bundle);
        assert_eq!(certificates(written.as_bytes()).unwrap(), ders);
    }

    #[test]
    fn crlf_line_ends_and_other_blocks_are_read() {
        let a = ca_pem();
        let lf = certificates(a.as_bytes()).unwrap();
        let crlf = a.replace('\n', "\r\n");
        assert_eq!(certificates(crlf.as_bytes()).unwrap(), lf);
        let with_key = format!(
            "{a}-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n{}",
            a
        );
        assert_eq!(certificates(with_key.as_bytes()).unwrap().len(), 2);
    }

    #[test]
    fn garbage_is_refused_with_a_clear_error() {
        let bad = "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n";
        let err = certificates(bad.as_bytes()).unwrap_err();
        assert!(
            err.to_string().starts_with("certificate PEM: invalid data"),
            "{err}"
        );
        let mismatched = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let err = certificates(mismatched.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("mismatching BEGIN"), "{err}");
        // No block at all: nothing, and loading says so.
        assert!(certificates(b"junk").unwrap().is_empty());
        let err = crate::webhook::certs::load_pem(b"junk", b"junk").unwrap_err();
        assert_eq!(
            err.to_string(),
            "certificate PEM holds no CERTIFICATE block"
        );
    }
}
