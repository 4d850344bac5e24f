//! TlsConnector construction and TlsError messages (no network).

mod support;

use std::sync::Arc;

use support::servers::TestCa;
use weft::tls::{TlsConnector, TlsError, TlsStage};

#[test]
fn empty_or_invalid_pem_is_a_config_error() {
    assert!(matches!(
        TlsConnector::with_root_pem(b""),
        Err(TlsError::Config(_))
    ));
    assert!(matches!(
        TlsConnector::with_root_pem(
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"
        ),
        Err(TlsError::Config(_))
    ));
    assert!(matches!(
        TlsConnector::with_root_pem_file(std::path::Path::new("/nonexistent/weft-ca.pem")),
        Err(TlsError::Config(_))
    ));
}

#[test]
fn pool_ids_are_shared_by_clones_only() {
    let ca = TestCa::new();
    let a = TlsConnector::with_root_pem(ca.pem().as_bytes()).unwrap();
    let b = TlsConnector::with_root_pem(ca.pem().as_bytes()).unwrap();
    assert_eq!(a.pool_id(), a.clone().pool_id());
    assert_ne!(a.pool_id(), b.pool_id());
    let insecure = TlsConnector::danger_accept_invalid_certs();
    assert!(!insecure.verifies());
    assert!(format!("{insecure:?}").contains("verifies: false"));
}

#[test]
fn from_client_config_is_used_as_is() {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let tls = TlsConnector::from_client_config(Arc::new(config));
    assert!(tls.verifies());
    let stage = TlsStage::new(&tls, "localhost").unwrap();
    // The ClientHello is ready to go.
    assert!(stage.wants_write());
    assert!(stage.is_handshaking());
    assert!(!stage.received_close_notify());
}

#[test]
fn server_names() {
    let tls = TlsConnector::webpki_roots();
    assert!(TlsStage::new(&tls, "example.test").is_ok());
    assert!(TlsStage::new(&tls, "127.0.0.1").is_ok());
    assert!(TlsStage::new(&tls, "[::1]").is_ok());
    assert!(matches!(
        TlsStage::new(&tls, "not a name"),
        Err(TlsError::InvalidServerName(_))
    ));
}

#[test]
fn messages_name_the_cause() {
    assert_eq!(
        TlsError::UnknownIssuer.to_string(),
        "certificate verify failed: unknown issuer"
    );
    assert_eq!(
        TlsError::Expired.to_string(),
        "certificate verify failed: certificate has expired"
    );
    assert!(TlsError::NameMismatch.to_string().contains("host name"));
    assert!(TlsError::NotValidYet.to_string().contains("not valid yet"));
}
