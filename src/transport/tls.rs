//! TLS for connections (rustls with the ring provider): loading the `net.ssl.*` PEM
//! files into configurations, the client's certificate check, and the `SSLSEC_*` level
//! a finished handshake reached. The packet layer above does not change.
//!
//! The client's check accepts a server certificate that
//! * is exactly one of the certificates in its CA file ("pinned": how peng3dnet apps
//!   usually trust a self-signed server, which rustls' default verifier refuses with
//!   `CaUsedAsEndEntity`), or
//! * chains to one of them and is currently valid (and, with `check_hostname`, names
//!   the host connected to).
//!
//! With `require_verified` anything else fails the handshake; without it the
//! connection is still encrypted but reaches only `SSLSEC_ENCRYPTED`.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::client::{ClientConfig, ResolvesClientCert};
use rustls::crypto::{self, CryptoProvider};
use rustls::server::{ParsedCertificate, ServerConfig, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;

use super::sync::Unpoisoned;
use crate::peer::constants::sslsec;

/// A TLS option that cannot be used, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSetupError(pub String);

impl fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsSetupError {}

/// The *ring* provider: it builds with a C compiler alone (aws-lc-rs, rustls' default,
/// needs cmake and more), a choice of the project. rustls 0.23.48 deprecated it because
/// *ring* has no post-quantum key exchange; the classic groups it offers (X25519, P-256,
/// P-384) are what the original's Python `ssl` offers too. Moving to aws-lc-rs is the
/// way to post-quantum key exchange, when the build may need cmake.
fn provider() -> Arc<CryptoProvider> {
    #[allow(deprecated)]
    Arc::new(crypto::ring::default_provider())
}

fn load_certs(option: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|err| {
            TlsSetupError(format!(
                "{option}: cannot read certificates from {}: {err}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(TlsSetupError(format!(
            "{option}: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certs)
}

fn load_key(option: &str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    PrivateKeyDer::from_pem_file(path).map_err(|err| {
        TlsSetupError(format!(
            "{option}: cannot read a PEM private key from {}: {err}",
            path.display()
        ))
    })
}

fn roots_of(
    option: &str,
    certs: &[CertificateDer<'static>],
) -> Result<RootCertStore, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs.iter().cloned());
    if added == 0 {
        return Err(TlsSetupError(format!(
            "{option}: none of its certificates can be used as a trust anchor"
        )));
    }
    Ok(roots)
}

fn certified_key(
    cert_option: &str,
    cert: &Path,
    key_option: &str,
    key: &Path,
) -> Result<CertifiedKey, TlsSetupError> {
    let chain = load_certs(cert_option, cert)?;
    let key_der = load_key(key_option, key)?;
    CertifiedKey::from_der(chain, key_der, &provider()).map_err(|err| {
        TlsSetupError(format!(
            "{key_option}: the key in {} does not fit the certificate in {}: {err}",
            key.display(),
            cert.display()
        ))
    })
}

/// A TLS handshake that failed (wrapped in the `io::Error` that reports it).
#[derive(Debug)]
pub struct TlsHandshakeError(pub String);

impl fmt::Display for TlsHandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsHandshakeError {}

fn io_error(context: &str, err: impl fmt::Display) -> io::Error {
    io::Error::other(TlsHandshakeError(format!("{context}: {err}")))
}

// --- server ----------------------------------------------------------------------------

/// What a server needs for TLS: its certificate and key, and optionally the CA its
/// clients' certificates must chain to.
#[derive(Debug, Clone)]
pub struct ServerTlsOptions {
    /// PEM certificate chain (`net.ssl.server.certfile`).
    pub certfile: PathBuf,
    /// PEM private key (`net.ssl.server.keyfile`).
    pub keyfile: PathBuf,
    /// PEM CA certificates for client certificates (`net.ssl.cafile`); `None`: clients
    /// are not asked for certificates.
    pub client_ca: Option<PathBuf>,
    /// Refuse clients without a valid certificate (`net.ssl.server.force_verify`);
    /// only meaningful with `client_ca`.
    pub require_client_cert: bool,
}

/// A loaded server configuration.
pub struct ServerTls {
    acceptor: tokio_rustls::TlsAcceptor,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerTls")
    }
}

/// A server-side TLS stream.
pub type ServerStream = tokio_rustls::server::TlsStream<TcpStream>;
/// A client-side TLS stream.
pub type ClientStream = tokio_rustls::client::TlsStream<TcpStream>;

impl ServerTls {
    /// Loads the files named by `options`.
    pub fn load(options: &ServerTlsOptions) -> Result<ServerTls, TlsSetupError> {
        let key = certified_key(
            "net.ssl.server.certfile",
            &options.certfile,
            "net.ssl.server.keyfile",
            &options.keyfile,
        )?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|err| TlsSetupError(err.to_string()))?;
        let builder = match &options.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let roots = roots_of("net.ssl.cafile", &load_certs("net.ssl.cafile", ca)?)?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
                let verifier = if options.require_client_cert {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                builder.with_client_cert_verifier(
                    verifier
                        .build()
                        .map_err(|err| TlsSetupError(format!("net.ssl.cafile: {err}")))?,
                )
            }
        };
        let config =
            builder.with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(key)));
        Ok(ServerTls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Runs the server side of the TLS handshake; returns the stream and its level:
    /// `SSLSEC_BOTHAUTH` if the client proved a valid certificate, else
    /// `SSLSEC_SERVERAUTH` (the server's own certificate authenticates it).
    pub async fn accept(&self, stream: TcpStream) -> io::Result<(ServerStream, u32)> {
        let stream = self
            .acceptor
            .accept(stream)
            .await
            .map_err(|err| io_error("TLS handshake failed", err))?;
        let client_authenticated = stream
            .get_ref()
            .1
            .peer_certificates()
            .is_some_and(|certs| !certs.is_empty());
        let level = if client_authenticated {
            sslsec::BOTHAUTH
        } else {
            sslsec::SERVERAUTH
        };
        Ok((stream, level))
    }
}

// --- client ----------------------------------------------------------------------------

/// What a client needs for TLS.
#[derive(Debug, Clone, Default)]
pub struct ClientTlsOptions {
    /// PEM certificates to trust: CAs, or the server's own certificate
    /// (`net.ssl.cafile`, else `net.ssl.server.certfile`); `None`: trust nothing.
    pub ca: Option<PathBuf>,
    /// Fail unless the server's certificate is trusted (`net.ssl.client.force_verify`).
    pub require_verified: bool,
    /// The certificate must name the host (`net.ssl.client.check_hostname`).
    pub check_hostname: bool,
    /// The client's own certificate and key, for servers that ask for one.
    pub certfile: Option<PathBuf>,
    /// See `certfile`.
    pub keyfile: Option<PathBuf>,
}

/// A loaded client configuration.
#[derive(Debug)]
pub struct ClientTls {
    options: ClientTlsOptions,
    /// The certificates of the CA file, for pinning.
    trusted: Vec<CertificateDer<'static>>,
    roots: Arc<RootCertStore>,
    own_key: Option<Arc<CertifiedKey>>,
}

impl ClientTls {
    /// Loads the files named by `options`.
    pub fn load(options: &ClientTlsOptions) -> Result<ClientTls, TlsSetupError> {
        let (trusted, roots) = match &options.ca {
            Some(ca) => {
                let certs = load_certs("net.ssl.cafile", ca)?;
                // A pinned self-signed leaf may not parse as an anchor; pinning still works.
                let mut roots = RootCertStore::empty();
                roots.add_parsable_certificates(certs.iter().cloned());
                (certs, roots)
            }
            None if options.require_verified => {
                return Err(TlsSetupError(
                    "net.ssl.client.force_verify is set but there is nothing to verify the \
                     server against: set net.ssl.cafile (or net.ssl.server.certfile) to the \
                     CA or the server's certificate"
                        .to_owned(),
                ))
            }
            None => (Vec::new(), RootCertStore::empty()),
        };
        let own_key = match (&options.certfile, &options.keyfile) {
            (Some(cert), Some(key)) => Some(Arc::new(certified_key(
                "net.ssl.client.certfile",
                cert,
                "net.ssl.client.keyfile",
                key,
            )?)),
            (None, None) => None,
            _ => {
                return Err(TlsSetupError(
                    "net.ssl.client.certfile and net.ssl.client.keyfile must be set together"
                        .to_owned(),
                ))
            }
        };
        Ok(ClientTls {
            options: options.clone(),
            trusted,
            roots: Arc::new(roots),
            own_key,
        })
    }

    /// Runs the client side of the TLS handshake with `host` (the name or address
    /// connected to); returns the stream and its level.
    pub async fn connect(&self, stream: TcpStream, host: &str) -> io::Result<(ClientStream, u32)> {
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|err| io_error(&format!("{host:?} is not a valid TLS server name"), err))?;
        let verifier = Arc::new(ServerCheck {
            trusted: self.trusted.clone(),
            roots: self.roots.clone(),
            require_verified: self.options.require_verified,
            check_hostname: self.options.check_hostname,
            provider: provider(),
            outcome: AtomicU32::new(sslsec::ENCRYPTED),
            failure: Mutex::new(None),
        });
        let resolver = Arc::new(OwnCert {
            key: self.own_key.clone(),
            sent: AtomicBool::new(false),
        });
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|err| io_error("TLS setup", err))?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_client_cert_resolver(resolver.clone());
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let stream = connector
            .connect(server_name, stream)
            .await
            .map_err(|err| {
                let detail = verifier
                    .failure
                    .lock_anyway()
                    .clone()
                    .unwrap_or_else(|| explain_client_failure(&err));
                io_error("TLS handshake failed", detail)
            })?;
        let mut level = verifier.outcome.load(Ordering::SeqCst);
        if level == sslsec::SERVERAUTH && resolver.sent.load(Ordering::SeqCst) {
            // The server asked for our certificate and completed the handshake, so it
            // accepted it (a verifying server aborts on a certificate it rejects).
            level = sslsec::BOTHAUTH;
        }
        Ok((stream, level))
    }
}

fn explain_client_failure(err: &io::Error) -> String {
    let tls_error = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    // What a plaintext peng3dnet server sends first (its hello frame) is not a TLS record.
    if let Some(rustls::Error::InvalidMessage(_)) = tls_error {
        format!("{err} (the server does not seem to speak TLS: is net.ssl.enabled set on it?)")
    } else {
        err.to_string()
    }
}

/// The client's certificate, if it has one; remembers whether the server asked for it.
#[derive(Debug)]
struct OwnCert {
    key: Option<Arc<CertifiedKey>>,
    sent: AtomicBool,
}

impl ResolvesClientCert for OwnCert {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        let key = self.key.clone();
        if key.is_some() {
            self.sent.store(true, Ordering::SeqCst);
        }
        key
    }

    fn has_certs(&self) -> bool {
        self.key.is_some()
    }
}

/// The client's check of the server certificate (see the module documentation). One
/// per connection: it records what it found.
#[derive(Debug)]
struct ServerCheck {
    trusted: Vec<CertificateDer<'static>>,
    roots: Arc<RootCertStore>,
    require_verified: bool,
    check_hostname: bool,
    provider: Arc<CryptoProvider>,
    /// `SSLSEC_SERVERAUTH` once the certificate is authenticated, else `ENCRYPTED`.
    outcome: AtomicU32,
    /// Why verification failed, for the error message.
    failure: Mutex<Option<String>>,
}

impl ServerCheck {
    fn authenticate(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), String> {
        if self
            .trusted
            .iter()
            .any(|pinned| pinned.as_ref() == end_entity.as_ref())
        {
            return Ok(());
        }
        if self.trusted.is_empty() {
            return Err(
                "no CA file is configured (net.ssl.cafile), so the server's \
                        certificate cannot be verified"
                    .to_owned(),
            );
        }
        let cert = ParsedCertificate::try_from(end_entity)
            .map_err(|err| format!("the server's certificate cannot be parsed: {err}"))?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )
        .map_err(|err| format!("the server's certificate is not trusted: {err}"))?;
        if self.check_hostname {
            verify_server_name(&cert, server_name).map_err(|err| {
                format!(
                    "the server's certificate does not name {}: {err}",
                    server_name.to_str()
                )
            })?;
        }
        Ok(())
    }
}

impl ServerCertVerifier for ServerCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.authenticate(end_entity, intermediates, server_name, now) {
            Ok(()) => {
                // Authenticated means "this is the server we meant": a chain without a
                // hostname check proves only that some holder of a CA-signed
                // certificate answered.
                let pinned = self
                    .trusted
                    .iter()
                    .any(|pinned| pinned.as_ref() == end_entity.as_ref());
                if pinned || self.check_hostname {
                    self.outcome.store(sslsec::SERVERAUTH, Ordering::SeqCst);
                }
                Ok(ServerCertVerified::assertion())
            }
            Err(why) if self.require_verified => {
                *self.failure.lock_anyway() = Some(why.clone());
                Err(rustls::Error::General(why))
            }
            Err(_) => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
