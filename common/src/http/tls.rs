//! HTTPS for a listener: the rustls server config, built once at start from
//! the PEM certificate chain and key the config names, and a listener that
//! hands axum only connections whose TLS handshake is done.

use std::{io, net::SocketAddr, path::Path, sync::Arc, time::Duration};

use rustls::{
    ServerConfig,
    crypto::ring,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    sign::{CertifiedKey, SingleCertAndKey},
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

/// Which of the two files a [`TlsFileError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    Certificate,
    PrivateKey,
}

/// A certificate chain or key that cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TlsFileError {
    pub file: TlsFile,
    pub message: String,
}

fn refused(file: TlsFile, message: String) -> TlsFileError {
    TlsFileError { file, message }
}

/// The server config for `cert` (a PEM chain, the server's certificate
/// first) and `key` (a PEM private key: PKCS#8, PKCS#1 or SEC1), which must
/// be the key of that certificate.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsFileError> {
    use TlsFile::{Certificate, PrivateKey};
    let pem = std::fs::read(cert).map_err(|e| refused(Certificate, format!("cannot read {}: {e}", cert.display())))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| refused(Certificate, format!("{} is not valid PEM: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(refused(Certificate, format!("{} holds no PEM CERTIFICATE", cert.display())));
    }
    let pem = std::fs::read(key).map_err(|e| refused(PrivateKey, format!("cannot read {}: {e}", key.display())))?;
    let key_der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => refused(
            PrivateKey,
            format!("{} holds no PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)", key.display()),
        ),
        e => refused(PrivateKey, format!("{} is not valid PEM: {e}", key.display())),
    })?;
    let provider = Arc::new(ring::default_provider());
    let signing_key = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| refused(PrivateKey, format!("{}: unusable private key: {e}", key.display())))?;
    // What with_single_cert would check, done here to say which file is at fault.
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(refused(
                PrivateKey,
                format!("{} is not the key of the first certificate of {}", key.display(), cert.display()),
            ));
        }
        Err(e) => return Err(refused(Certificate, format!("{}: unusable certificate: {e}", cert.display()))),
    }
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    // axum is built without its http2 feature (workspace Cargo.toml), so
    // HTTP/1.1 is all a client may pick.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// How long a client may take to complete its handshake: one that connects
/// and goes quiet would otherwise hold a socket and a task for good. Ample
/// for any real peer.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for axum to take them; a handshake that
/// finds the queue full waits, so a burst of clients cannot queue unbounded.
const HANDSHAKEN_BACKLOG: usize = 64;

/// A TCP listener whose connections axum receives after their TLS
/// handshake. Each handshake runs on its own task, so a slow or failing
/// client holds up nobody else; a failed one is logged at debug and closed.
pub(super) struct TlsListener {
    local_addr: SocketAddr,
    handshaken: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Starts accepting on `tcp`. It stops, and the port is released, when
    /// the listener is dropped (axum drops it when shutdown begins).
    pub(super) fn new(mut tcp: TcpListener, config: Arc<ServerConfig>) -> io::Result<TlsListener> {
        let local_addr = tcp.local_addr()?;
        let (sender, handshaken) = mpsc::channel(HANDSHAKEN_BACKLOG);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    _ = sender.closed() => return,
                    // axum's own accept loop: it logs and retries accept errors.
                    accepted = axum::serve::Listener::accept(&mut tcp) => accepted,
                };
                let (acceptor, sender) = (acceptor.clone(), sender.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            // An error only says the server is shutting down.
                            let _ = sender.send((tls, peer)).await;
                        }
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { local_addr, handshaken })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // The accept task ends only once this receiver is gone, or when it
        // panicked: then the listener is dead and the process must stop.
        self.handshaken.recv().await.expect("the TLS accept task runs as long as its listener")
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local_addr)
    }
}
