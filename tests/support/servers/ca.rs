//! A throw-away certificate authority generated with rcgen at test time (ECDSA P-256). It
//! holds one server certificate for `localhost` and `127.0.0.1` (what nginx and the TLS
//! scripted servers present), signs leaves for any names and validity ([`TestCa::leaf`]), and
//! [`TestCa::generate`] writes the CA and the server certificate to PEM files for nginx.

use std::fmt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A date: year, month, day.
pub type Ymd = (i32, u8, u8);

/// A test CA and a server certificate signed by it.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
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
    /// The PEM files [`TestCa::generate`] wrote: CA, server certificate, server key.
    files: Option<[PathBuf; 3]>,
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa")
            .field("ca_cert_pem", &self.ca_cert_pem)
            .field("server_cert_pem", &self.server_cert_pem)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl TestCa {
    /// Generates the CA and its server certificate, in memory.
    pub fn new() -> TestCa {
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
        let issuer = CertifiedIssuer::self_signed(ca_params, ca_key).expect("self-sign CA");

        let mut params = leaf_params(&["localhost", "127.0.0.1"], None);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("generate server key");
        let cert = params.signed_by(&key, &issuer).expect("sign server cert");

        TestCa {
            ca_cert_pem: issuer.pem(),
            ca_cert_der: issuer.der().clone(),
            server_cert_pem: cert.pem(),
            server_cert_der: cert.der().clone(),
            server_key_pem: key.serialize_pem(),
            server_key_der: key.serialize_der(),
            issuer,
            files: None,
        }
    }

    /// [`TestCa::new`], and writes `ca.pem`, `server.pem` and `server.key` into `dir` (which
    /// must exist).
    pub fn generate(dir: &Path) -> TestCa {
        let mut ca = TestCa::new();
        let files = ["ca.pem", "server.pem", "server.key"].map(|name| dir.join(name));
        let contents = [&ca.ca_cert_pem, &ca.server_cert_pem, &ca.server_key_pem];
        for (path, pem) in files.iter().zip(contents) {
            std::fs::write(path, pem).unwrap();
        }
        ca.files = Some(files);
        ca
    }

    /// The PEM file at `index` of `files`, for a CA made by [`TestCa::generate`].
    fn file(&self, index: usize) -> &Path {
        let files = self.files.as_ref();
        &files.expect("PEM files are written by TestCa::generate")[index]
    }

    /// `<dir>/ca.pem`: the CA certificate.
    pub fn ca_cert_path(&self) -> &Path {
        self.file(0)
    }

    /// `<dir>/server.pem`: the server certificate only (the CA is not appended).
    pub fn server_cert_path(&self) -> &Path {
        self.file(1)
    }

    /// `<dir>/server.key`: the server key.
    pub fn server_key_path(&self) -> &Path {
        self.file(2)
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.ca_cert_pem.clone()
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

    /// The server certificate (alone, as nginx sends it) and its key.
    pub fn server_leaf(&self) -> Leaf {
        Leaf {
            chain: vec![self.server_cert_der.clone()],
            key: self.server_key(),
        }
    }

    /// A leaf for `names` (DNS names or IP literals), valid from `not_before` to `not_after`
    /// (`None`: rcgen's wide defaults).
    pub fn leaf(&self, names: &[&str], validity: Option<(Ymd, Ymd)>) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let cert = leaf_params(names, validity)
            .signed_by(&key, &self.issuer)
            .unwrap();
        Leaf {
            chain: vec![cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        }
    }
}

/// Certificate parameters for `names`, named after the first, with `validity` if given.
fn leaf_params(names: &[&str], validity: Option<(Ymd, Ymd)>) -> CertificateParams {
    let mut params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
    if let Some(((y1, m1, d1), (y2, m2, d2))) = validity {
        params.not_before = rcgen::date_time_ymd(y1, m1, d1);
        params.not_after = rcgen::date_time_ymd(y2, m2, d2);
    }
    params
}

/// A server certificate chain and its key.
pub struct Leaf {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Leaf {
    /// A self-signed certificate (no CA).
    pub fn self_signed(names: &[&str]) -> Leaf {
        let ck = rcgen::generate_simple_self_signed(
            names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        Leaf {
            chain: vec![ck.cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()).into(),
        }
    }
}
