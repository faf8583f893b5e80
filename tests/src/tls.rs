//! HTTPS for test servers: a certificate authority made for the test, the
//! server certificates it signs (for deployments that federate, and for the
//! servers a scenario runs in place of a remote party, such as a push
//! gateway), a listener that serves an axum router over TLS, and clients
//! that trust the CA. Everything uses rustls' ring provider, as the
//! homeserver does.

use std::{
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        ClientConfig, RootCertStore, ServerConfig,
        crypto::ring,
        pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer},
    },
    server::TlsStream,
};

/// Makes ring rustls' process-wide default, once. reqwest is built without a
/// provider of its own (common/src/outbound.rs hands it one), so a plain
/// `reqwest::Client::new()` panics in a process that has no default; the
/// harness calls this before it builds a client and before a scenario can.
pub fn install_default_provider() {
    // An error only says a default is installed already.
    let _ = ring::default_provider().install_default();
}

/// A self-signed certificate authority for one test, with its certificate
/// in a PEM file that a config can name. Clones share the CA; the file is
/// removed when the last clone is dropped, so a deployment that trusts the
/// CA keeps a clone.
#[derive(Clone)]
pub struct TestCa {
    inner: Arc<Ca>,
}

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pem_path: PathBuf,
}

/// A server certificate issued by a [`TestCa`], as PEM.
pub struct ServerPem {
    /// The server's certificate, then the CA's.
    pub chain: String,
    /// Its private key (PKCS#8).
    pub key: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::new()).expect("no names to check");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("a CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("a self-signed CA certificate");
        let pem_path = std::env::temp_dir().join(format!("hs-test-ca-{:016x}.pem", rand::random::<u64>()));
        std::fs::write(&pem_path, issuer.pem()).expect("the CA certificate is written");
        TestCa { inner: Arc::new(Ca { issuer, pem_path }) }
    }

    /// The CA certificate as a PEM file.
    pub fn pem_path(&self) -> &Path {
        &self.inner.pem_path
    }

    /// A certificate this CA signs for `names` (DNS names or IP addresses), and its key.
    fn issue(&self, names: &[&str]) -> (Certificate, KeyPair) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("valid names");
        params.distinguished_name.push(DnType::CommonName, "test server");
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("a server key");
        let cert = params.signed_by(&key, &self.inner.issuer).expect("a server certificate");
        (cert, key)
    }

    /// A server certificate for `names` as PEM, for a server that reads
    /// files (the homeserver's `--tls-cert` and `--tls-key`).
    pub fn issue_pem(&self, names: &[&str]) -> ServerPem {
        let (cert, key) = self.issue(names);
        ServerPem { chain: format!("{}{}", cert.pem(), self.inner.issuer.pem()), key: key.serialize_pem() }
    }

    /// A server config presenting a certificate this CA signed for `names`
    /// (DNS names or IP addresses), followed by the CA's own.
    pub fn server_config(&self, names: &[&str]) -> Arc<ServerConfig> {
        let (cert, key) = self.issue(names);
        let chain = vec![cert.der().clone(), self.inner.issuer.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("the key matches the certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// A reqwest client that trusts this CA and no other, speaking HTTP/1.1
    /// as the homeserver does; plain `http://` URLs work with it too.
    pub fn client(&self) -> reqwest::Client {
        let mut roots = RootCertStore::empty();
        roots.add(self.inner.issuer.der().clone()).expect("the CA certificate is a trust anchor");
        let mut tls = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        reqwest::Client::builder().tls_backend_preconfigured(tls).build().expect("a reqwest client")
    }
}

impl Drop for Ca {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pem_path);
    }
}

/// Why TLS handshakes with a [`TlsListener`] failed, in order: a client that
/// does not trust the certificate aborts with an alert (`UnknownCA`).
pub type HandshakeFailures = Arc<Mutex<Vec<String>>>;

/// A loopback listener for `axum::serve` whose connections are TLS. Each
/// handshake runs on its own task, so a stalled client holds up nobody else.
pub struct TlsListener {
    local_addr: SocketAddr,
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    failures: HandshakeFailures,
}

impl TlsListener {
    /// Listens on a free port of 127.0.0.1.
    pub async fn bind(config: Arc<ServerConfig>) -> TlsListener {
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let local_addr = tcp.local_addr().expect("a bound address");
        let (sender, accepted) = mpsc::channel(16);
        let failures = HandshakeFailures::default();
        let (acceptor, recorded) = (TlsAcceptor::from(config), failures.clone());
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    _ = sender.closed() => return,
                    accepted = tcp.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(_) => continue,
                    },
                };
                let (acceptor, sender, recorded) = (acceptor.clone(), sender.clone(), recorded.clone());
                tokio::spawn(async move {
                    match acceptor.accept(stream).await {
                        Ok(tls) => {
                            let _ = sender.send((tls, peer)).await;
                        }
                        Err(e) => recorded.lock().expect("not poisoned").push(e.to_string()),
                    }
                });
            }
        });
        TlsListener { local_addr, accepted, failures }
    }

    /// The handshakes that failed so far, and those to come.
    pub fn handshake_failures(&self) -> HandshakeFailures {
        self.failures.clone()
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        self.accepted.recv().await.expect("the accept task runs as long as the listener")
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local_addr)
    }
}
