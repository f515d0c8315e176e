//! TLS over stream connections (rustls with the ring provider): client configurations that
//! verify against the system roots or a given CA, server configurations from PEM or a
//! self-signed certificate made for the listener's names, and what a handshake negotiated.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{Error as PemError, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::error::{ErrorKind, NetError};
use super::pem::Want;

/// How a client connection does TLS: `connect(addr, #{tls: true})` or `#{tls: #{…}}`.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// Trust these PEM certificates instead of the system roots.
    pub ca: Option<String>,
    /// The name to ask for and verify; the address's host when not given.
    pub sni: Option<String>,
    pub alpn: Vec<String>,
    /// Accept any certificate (for poking at a server, never for checking one).
    pub insecure: bool,
}

/// Where a TLS listener's certificate comes from.
#[derive(Debug, Clone)]
pub enum ServerCert {
    Pem {
        cert: String,
        key: String,
    },
    /// Made at `listen` for the listener's names (`localhost` and its IP).
    SelfSigned,
}

#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert: ServerCert,
    pub alpn: Vec<String>,
}

/// What a handshake settled on, for `conn.tls`.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    /// `TLSv1_3`, `TLSv1_2`.
    pub version: String,
    pub cipher: String,
    pub alpn: Option<String>,
    /// The name the client asked for, as the server saw it (server side only).
    pub sni: Option<String>,
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

fn tls_error(op: &'static str, addr: &str, why: impl std::fmt::Display) -> NetError {
    NetError::new(
        ErrorKind::Tls,
        op,
        Some(addr),
        format!("{}: tls: {why}", super::error::describe(op, Some(addr))),
    )
}

/// The system's trusted roots, read once; `SSL_CERT_FILE` and `SSL_CERT_DIR` name others, as
/// OpenSSL's do. An `SSL_CERT_FILE` that is no regular file (a pipe would block the read for
/// good) is an error that names it.
fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            if let Some(file) = std::env::var_os("SSL_CERT_FILE") {
                let is_file = std::fs::metadata(&file).map(|m| m.is_file());
                if matches!(is_file, Ok(false)) {
                    let file = file.to_string_lossy();
                    return Err(format!("SSL_CERT_FILE `{file}` is not a regular file"));
                }
            }
            let mut store = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let _ = store.add_parsable_certificates(found.certs);
            Ok(Arc::new(store))
        })
        .clone()
}

fn certs_from_pem(
    op: &'static str,
    addr: &str,
    what: &str,
    pem: &str,
) -> Result<Vec<CertificateDer<'static>>, NetError> {
    // The parser's error quotes the text (a key, in decimal): only `pem::problem` words it.
    match CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<Vec<_>, _>>() {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        Ok(_) => Err(pem_error(op, addr, what, pem, Want::Certificate, None)),
        Err(e) => Err(pem_error(op, addr, what, pem, Want::Certificate, Some(&e))),
    }
}

fn pem_error(
    op: &'static str,
    addr: &str,
    what: &str,
    pem: &str,
    want: Want,
    err: Option<&PemError>,
) -> NetError {
    tls_error(
        op,
        addr,
        format!("{what}: {}", super::pem::problem(pem, want, err)),
    )
}

/// The connector for `opts`, and the name to verify.
pub(crate) fn connector(
    opts: &ClientTls,
    host: &str,
    addr: &str,
) -> Result<(TlsConnector, ServerName<'static>), NetError> {
    let op = "connect";
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(op, addr, e))?;
    let mut config = if opts.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider())))
            .with_no_client_auth()
    } else {
        let (roots, pinned) = match &opts.ca {
            Some(pem) => {
                let certs = certs_from_pem(op, addr, "`ca`", pem)?;
                let mut store = RootCertStore::empty();
                // A server's own self-signed certificate is a fine `ca` even when it is marked
                // as a CA (as `openssl req -x509` makes them), so it is also pinned below.
                let _ = store.add_parsable_certificates(certs.iter().cloned());
                if store.is_empty() {
                    return Err(tls_error(op, addr, "no usable certificate in `ca`"));
                }
                (Arc::new(store), certs)
            }
            None => (
                system_roots().map_err(|why| tls_error(op, addr, why))?,
                Vec::new(),
            ),
        };
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| tls_error(op, addr, e))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedOrWebPki { webpki, pinned }))
            .with_no_client_auth()
    };
    config.alpn_protocols = opts.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let name = opts.sni.as_deref().unwrap_or(host);
    let name = ServerName::try_from(name.to_owned())
        .map_err(|_| tls_error(op, addr, format!("`{name}` is not a valid server name")))?;
    Ok((TlsConnector::from(Arc::new(config)), name))
}

/// A listener's TLS side: the acceptor, and its certificate for clients to trust.
pub(crate) struct Acceptor {
    pub acceptor: TlsAcceptor,
    pub cert_pem: String,
}

/// The acceptor for `opts`; a self-signed certificate names `names`.
pub(crate) fn acceptor(
    opts: &ServerTls,
    names: Vec<String>,
    addr: &str,
) -> Result<Acceptor, NetError> {
    let op = "listen";
    let (cert_pem, key_pem) = match &opts.cert {
        ServerCert::Pem { cert, key } => (cert.clone(), key.clone()),
        ServerCert::SelfSigned => {
            let made = rcgen::generate_simple_self_signed(names)
                .map_err(|e| tls_error(op, addr, format!("cannot make a certificate: {e}")))?;
            (made.cert.pem(), made.signing_key.serialize_pem())
        }
    };
    let certs = certs_from_pem(op, addr, "`cert`", &cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| {
        let e = (!matches!(e, PemError::NoItemsFound)).then_some(&e);
        pem_error(op, addr, "`key`", &key_pem, Want::PrivateKey, e)
    })?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(op, addr, e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| tls_error(op, addr, cert_and_key_error(&e)))?;
    config.alpn_protocols = opts.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(Acceptor {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        cert_pem,
    })
}

/// Why rustls refused a certificate and key, in its own words only where they hold no part of
/// either (its messages are fixed strings today; a future one is not trusted to be).
fn cert_and_key_error(err: &rustls::Error) -> &'static str {
    match err {
        rustls::Error::General(_) => {
            "`key` is not a private key rustls can use (RSA, ECDSA or Ed25519)"
        }
        rustls::Error::InconsistentKeys(_) => {
            "`key` does not belong to `cert` (their public keys differ)"
        }
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            "`cert` is not a certificate rustls can read"
        }
        _ => "the certificate and key do not fit",
    }
}

/// The handshake failed: say why in words, from rustls' error when there is one.
pub(crate) fn handshake_error(op: &'static str, addr: &str, err: &std::io::Error) -> NetError {
    let why = match err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(cert)) => {
            format!(
                "the peer's certificate was rejected: {}",
                describe_cert_error(cert)
            )
        }
        Some(rustls::Error::AlertReceived(alert)) => {
            format!("the peer refused the handshake (alert: {alert:?})")
        }
        // Its first bytes are not a TLS record: a plain-text service (an HTTP error page, an
        // SMTP or FTP greeting) or a plain-text client.
        Some(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType
            | rustls::InvalidMessage::UnknownProtocolVersion,
        )) => {
            "the peer does not speak TLS: what it sent is not a TLS record (plain text?)".to_owned()
        }
        Some(other) => other.to_string(),
        None if err.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the peer closed the connection during the handshake".to_owned()
        }
        None => err.to_string(),
    };
    tls_error(op, addr, format!("handshake failed: {why}"))
}

/// A name as rustls presents it (`DnsName("localhost")`, `IpAddress(127.0.0.1)`): the name.
fn presented_name(name: &str) -> &str {
    match name.split_once('(') {
        Some((_, inner)) => inner.trim_end_matches(')').trim_matches('"'),
        None => name,
    }
}

fn describe_cert_error(err: &rustls::CertificateError) -> String {
    use rustls::CertificateError as E;
    match err {
        E::UnknownIssuer => {
            "unknown issuer (not signed by a trusted CA; pass `ca` or `insecure`)".into()
        }
        E::NotValidForNameContext {
            expected,
            presented,
        } => {
            let names: Vec<String> = presented
                .iter()
                .map(|n| format!("`{}`", presented_name(n)))
                .collect();
            format!(
                "the certificate is not valid for `{}`: it names {} (set `sni` to one of them, \
                 or connect by that name)",
                expected.to_str(),
                if names.is_empty() {
                    "no name at all".to_owned()
                } else {
                    names.join(", ")
                }
            )
        }
        E::NotValidForName => "the certificate is not valid for this name (set `sni`?)".into(),
        E::Expired | E::ExpiredContext { .. } => "the certificate has expired".into(),
        E::NotValidYet | E::NotValidYetContext { .. } => "the certificate is not valid yet".into(),
        E::BadSignature => "bad signature".into(),
        E::Other(other) if format!("{other:?}").contains("CaUsedAsEndEntity") => {
            "the server's certificate is a CA certificate (give it as `ca` to trust it, or \
             serve a certificate signed by that CA)"
                .into()
        }
        other => format!("{other:?}"),
    }
}

impl TlsInfo {
    /// As the transcript notes it: `tls TLSv1_3 TLS13_AES_128_GCM_SHA256, alpn h2`.
    pub(crate) fn note(&self) -> String {
        let alpn = self
            .alpn
            .as_deref()
            .map_or(String::new(), |a| format!(", alpn {a}"));
        format!("tls {} {}{alpn}", self.version, self.cipher)
    }
}

pub(crate) fn info_of(conn: &rustls::CommonState, sni: Option<&str>) -> TlsInfo {
    TlsInfo {
        version: conn
            .protocol_version()
            .map_or_else(String::new, |v| format!("{v:?}")),
        cipher: conn
            .negotiated_cipher_suite()
            .map_or_else(String::new, |c| format!("{:?}", c.suite())),
        alpn: conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        sni: sni.map(str::to_owned),
    }
}

/// The usual chain verification, except that a server whose certificate is itself one of the
/// `ca` certificates is trusted (its name still checked): what Python's `ssl`, curl and
/// `openssl s_client` do with a self-signed certificate, which rustls alone refuses when the
/// certificate says it is a CA.
#[derive(Debug)]
struct PinnedOrWebPki {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for PinnedOrWebPki {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        match verified {
            Err(_)
                if self
                    .pinned
                    .iter()
                    .any(|p| p.as_ref() == end_entity.as_ref()) =>
            {
                let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&parsed, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// `insecure: true`: any certificate is accepted; signatures are still checked.
#[derive(Debug)]
struct AcceptAnything(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
