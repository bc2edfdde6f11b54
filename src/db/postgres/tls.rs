//! PostgreSQL over TLS, as libpq's `sslmode` and `sslrootcert` say it in the URL: `require`
//! encrypts (and, given a root certificate, verifies the server's chain, as libpq does),
//! `verify-ca` verifies the chain, `verify-full` the chain and the host name. The roots are
//! `sslrootcert`'s PEM file, or the system's store for `sslrootcert=system` or none given.
//! `disable`, `prefer` and no `sslmode` connect in plain text, as before TLS was supported
//! (`prefer` would accept any certificate, which protects from nothing an attacker does).
//!
//! tokio-postgres knows only `disable`, `prefer` and `require` and refuses any option it does
//! not know, so both are taken out of the URL here and the connector does the verifying.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// How a connection is made: plain, or through rustls set up for the URL's `sslmode`.
#[derive(Clone)]
pub(super) enum Tls {
    Plain,
    Rustls(tokio_postgres_rustls::MakeRustlsConnect),
}

/// libpq's `sslmode` values that ask for TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Require,
    VerifyCa,
    VerifyFull,
}

/// The URL tokio-postgres is given (without `sslrootcert`, and `verify-*` as `require`), and
/// how to connect. Errors name the URL parameter and, for a root certificate, the file.
pub(super) fn settings(url: &str) -> Result<(String, Tls), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), Tls::Plain));
    };
    let (mut mode, mut root) = (None, None);
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => {
                mode = match value {
                    "disable" | "prefer" | "allow" => None,
                    "require" => Some(Mode::Require),
                    "verify-ca" => Some(Mode::VerifyCa),
                    "verify-full" => Some(Mode::VerifyFull),
                    other => {
                        return Err(format!(
                            "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
                        ))
                    }
                };
            }
            "sslrootcert" => root = Some(percent_decode(value)),
            _ => kept.push(pair),
        }
    }
    let Some(mode) = mode else {
        kept.push("sslmode=disable");
        return Ok((format!("{base}?{}", kept.join("&")), Tls::Plain));
    };
    kept.push("sslmode=require");
    let config = client_config(mode, root.as_deref())?;
    Ok((
        format!("{base}?{}", kept.join("&")),
        Tls::Rustls(tokio_postgres_rustls::MakeRustlsConnect::new(config)),
    ))
}

fn client_config(mode: Mode, root: Option<&str>) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS settings: {e}"))?;
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, root) {
        // libpq: `require` without a root certificate encrypts and verifies nothing.
        (Mode::Require, None) => Arc::new(Unverified(provider)),
        (mode, root) => {
            let roots = Arc::new(roots(root.unwrap_or("system"))?);
            let chain = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| format!("sslrootcert: {e}"))?;
            if mode == Mode::VerifyFull {
                chain
            } else {
                Arc::new(ChainOnly(chain))
            }
        }
    };
    Ok(builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth())
}

/// The roots in PEM file `root`, or the system's store for `system`.
fn roots(root: &str) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    if root == "system" {
        let found = rustls_native_certs::load_native_certs();
        store.add_parsable_certificates(found.certs);
        if store.is_empty() {
            return Err("sslrootcert=system: the system's certificate store holds no certificate".into());
        }
        return Ok(store);
    }
    let failed = |e: &dyn std::fmt::Display| format!("sslrootcert {root}: {e}");
    let certificates = CertificateDer::pem_file_iter(root)
        .map_err(|e| failed(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(&e))?;
    let (added, _) = store.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(failed(&"no PEM certificate in it"));
    }
    Ok(store)
}

fn percent_decode(value: &str) -> String {
    url::form_urlencoded::parse(format!("v={value}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// `verify-ca`: the chain must lead to a trusted root; the name in the certificate is not
/// compared with the host connected to.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext {
                ..
            })) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
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

/// `require` without a root certificate: any certificate, as libpq; the handshake's own
/// signatures are still checked.
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_s_parameters_are_taken_out_of_the_url() {
        let plain = |url: &str| match settings(url).unwrap() {
            (url, Tls::Plain) => url,
            (url, Tls::Rustls(_)) => panic!("{url}: plain expected"),
        };
        assert_eq!(plain("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            plain("postgres://u@h/db?sslmode=prefer&application_name=x"),
            "postgres://u@h/db?application_name=x&sslmode=disable"
        );
        let (url, tls) = settings("postgres://u@h/db?sslmode=require").unwrap();
        assert!(matches!(tls, Tls::Rustls(_)));
        assert_eq!(url, "postgres://u@h/db?sslmode=require");
        let err =
            settings("postgres://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent.pem").err().unwrap();
        assert!(err.contains("sslrootcert /nonexistent.pem"), "{err}");
        let err = settings("postgres://u@h/db?sslmode=verify").err().unwrap();
        assert!(err.contains("sslmode=verify"), "{err}");
    }
}
