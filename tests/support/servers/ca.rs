//! A throw-away certificate authority and a server certificate for `localhost` and
//! `127.0.0.1`, generated with rcgen at test time (ECDSA P-256).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A test CA, a server certificate signed by it, and their PEM files on disk.
#[derive(Debug)]
pub struct TestCa {
    /// CA certificate, PEM.
    pub ca_cert_pem: String,
    /// CA certificate, DER.
    pub ca_cert_der: CertificateDer<'static>,
    /// Server certificate (SANs: DNS `localhost`, IP `127.0.0.1`), PEM.
    pub server_cert_pem: String,
    /// Server certificate, DER.
    pub server_cert_der: CertificateDer<'static>,
    /// Server private key, PKCS#8 PEM.
    pub server_key_pem: String,
    /// Server private key, PKCS#8 DER.
    pub server_key_der: Vec<u8>,
    /// `<dir>/ca.pem`.
    pub ca_cert_path: PathBuf,
    /// `<dir>/server.pem` (the server certificate only; the CA is not appended).
    pub server_cert_path: PathBuf,
    /// `<dir>/server.key`.
    pub server_key_path: PathBuf,
}

impl TestCa {
    /// Generates the CA and the server certificate and writes `ca.pem`, `server.pem` and
    /// `server.key` into `dir` (which must exist).
    pub fn generate(dir: &Path) -> TestCa {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "weft test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().expect("generate CA key");
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("self-sign CA");

        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("generate server key");
        let cert = params.signed_by(&key, &ca).expect("sign server cert");

        let ca_cert_path = dir.join("ca.pem");
        let server_cert_path = dir.join("server.pem");
        let server_key_path = dir.join("server.key");
        let ca_cert_pem = ca.pem();
        let server_cert_pem = cert.pem();
        let server_key_pem = key.serialize_pem();
        std::fs::write(&ca_cert_path, &ca_cert_pem).unwrap();
        std::fs::write(&server_cert_path, &server_cert_pem).unwrap();
        std::fs::write(&server_key_path, &server_key_pem).unwrap();
        TestCa {
            ca_cert_der: ca.der().clone(),
            server_cert_der: cert.der().clone(),
            server_key_der: key.serialize_der(),
            ca_cert_pem,
            server_cert_pem,
            server_key_pem,
            ca_cert_path,
            server_cert_path,
            server_key_path,
        }
    }

    /// A rustls root store holding only this CA.
    pub fn root_store(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.ca_cert_der.clone())
            .expect("add test CA to root store");
        roots
    }

    /// A rustls client config (ring provider, safe default versions) trusting only this CA,
    /// ALPN `http/1.1`.
    pub fn client_config(&self) -> rustls::ClientConfig {
        let mut cfg = rustls::ClientConfig::builder_with_provider(
            rustls::crypto::ring::default_provider().into(),
        )
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(self.root_store())
        .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        cfg
    }

    /// The server key as a rustls `PrivateKeyDer` (for an in-process rustls server).
    pub fn server_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key_der.clone()))
    }
}
