//! `tls_server_config` → a rustls `ServerConfig`, reading the certificate,
//! key and client CA (files or inline PEM) each time it is built: the
//! server builds one per new connection, so a rotated certificate is
//! served without a restart. Client certificates follow Go's five
//! `client_auth_type` policies; `client_allowed_sans` is checked while the
//! handshake verifies the certificate, so a refused client gets a TLS
//! alert, as from Go's `VerifyPeerCertificate`.

use std::sync::Arc;

use tokio_rustls::rustls::client::danger::HandshakeSignatureValid;
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, RootCertStore, ServerConfig,
    SignatureScheme,
};

use super::config::{ClientAuth, Pem, TlsSettings};
use super::san;

/// Reads the PEM files and builds the config; the error is one line
/// naming the setting (never the inline key's text).
pub fn server_config(settings: &TlsSettings) -> Result<ServerConfig, String> {
    let mut provider = crypto::ring::default_provider();
    if let Some(suites) = &settings.cipher_suites {
        provider.cipher_suites = suites.clone();
    }
    if let Some(groups) = &settings.kx_groups {
        provider.kx_groups = groups.clone();
    }
    let provider = Arc::new(provider);

    let certs = read_certs(&settings.cert, "cert")?;
    if certs.is_empty() {
        return Err(format!(
            "tls_server_config.cert_file: no certificate found in {}",
            settings.cert.describe("cert")
        ));
    }
    let key = read_key(&settings.key)?;
    let verifier = client_verifier(settings, &provider)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&settings.versions)
        .map_err(|e| format!("tls_server_config: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!(
                "tls_server_config: failed to load X509KeyPair {} and {}: {e}",
                settings.cert.describe("cert"),
                settings.key.describe("key")
            )
        })?;
    config.ignore_client_order = settings.prefer_server_order;
    // HTTP/1.1 only (see the README): say so in ALPN, so that a client
    // that wants HTTP/2 falls back instead of failing.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn pem_bytes(pem: &Pem, setting: &str) -> Result<Vec<u8>, String> {
    match pem {
        Pem::Inline(text) => Ok(text.expose().as_bytes().to_vec()),
        Pem::File(path) => std::fs::read(path).map_err(|e| {
            let why = match e.kind() {
                // Go's wording, which users (and the toolkit's tests) know.
                std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
                _ => e.to_string(),
            };
            format!(
                "tls_server_config.{setting}_file: open {}: {why}",
                path.display()
            )
        }),
    }
}

fn read_certs(pem: &Pem, setting: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = pem_bytes(pem, setting)?;
    CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            format!(
                "tls_server_config.{setting}_file: {} is not PEM certificates: {e}",
                pem.describe(setting)
            )
        })
}

fn read_key(pem: &Pem) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = pem_bytes(pem, "key")?;
    // The error names the source, never the key's text.
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        format!(
            "tls_server_config.key_file: no private key found in {} ({})",
            pem.describe("key"),
            match e {
                tokio_rustls::rustls::pki_types::pem::Error::NoItemsFound => "no PEM key block",
                _ => "not a PEM private key",
            }
        )
    })
}

fn client_verifier(
    settings: &TlsSettings,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let roots = || -> Result<Arc<RootCertStore>, String> {
        let Some(pem) = &settings.client_ca else {
            return Err("tls_server_config.client_ca_file: not set".into());
        };
        let mut roots = RootCertStore::empty();
        for cert in read_certs(pem, "client_ca")? {
            roots.add(cert).map_err(|e| {
                format!(
                    "tls_server_config.client_ca_file: a certificate of {} cannot be used: {e}",
                    pem.describe("client_ca")
                )
            })?;
        }
        if roots.is_empty() {
            return Err(format!(
                "tls_server_config.client_ca_file: no certificate found in {}",
                pem.describe("client_ca")
            ));
        }
        Ok(Arc::new(roots))
    };
    let webpki = |optional: bool| -> Result<Arc<dyn ClientCertVerifier>, String> {
        let builder = WebPkiClientVerifier::builder_with_provider(roots()?, provider.clone());
        let builder = if optional {
            builder.allow_unauthenticated()
        } else {
            builder
        };
        builder
            .build()
            .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))
    };
    let inner: Arc<dyn ClientCertVerifier> = match settings.client_auth {
        ClientAuth::NoClientCert => return Ok(WebPkiClientVerifier::no_client_auth()),
        ClientAuth::RequestClientCert => Arc::new(AnyCertificate::new(provider, false)),
        ClientAuth::RequireAnyClientCert => Arc::new(AnyCertificate::new(provider, true)),
        ClientAuth::VerifyClientCertIfGiven => webpki(true)?,
        ClientAuth::RequireAndVerifyClientCert => webpki(false)?,
    };
    if settings.allowed_sans.is_empty() {
        return Ok(inner);
    }
    Ok(Arc::new(AllowedSans {
        inner,
        allowed: settings.allowed_sans.clone(),
    }))
}

/// Go's `RequestClientCert` and `RequireAnyClientCert`: any certificate
/// is taken, unverified; the client must still prove it holds its key
/// (the handshake signature is checked).
#[derive(Debug)]
struct AnyCertificate {
    mandatory: bool,
    algorithms: crypto::WebPkiSupportedAlgorithms,
}

impl AnyCertificate {
    fn new(provider: &CryptoProvider, mandatory: bool) -> Self {
        AnyCertificate {
            mandatory,
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for AnyCertificate {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `client_allowed_sans` on top of a policy: the certificate must also
/// carry one of the names (exact match on a DNS, IP, e-mail or URI SAN).
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let names = san::subject_alt_names(end_entity);
        if names.iter().any(|name| self.allowed.contains(name)) {
            Ok(verified)
        } else {
            tracing::debug!(sans = ?names, "client certificate refused: none of its SANs is in client_allowed_sans");
            Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
