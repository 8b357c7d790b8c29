//! TLS: the SDK refuses a server whose certificate it cannot verify, says so in the error, and
//! accepts the same server once its CA is added through the options.

use cubewalk::{ChunkKey, Client, ClientOptions, Status};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An HTTPS server with a certificate for 127.0.0.1 signed by a throwaway CA; answers every
/// request with one fetch answer. Returns its endpoint and the CA (PEM).
async fn https_server() -> (String, Vec<u8>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (ca_pem, cert_pem, key_pem) = cubewalk_testkit::throwaway_certificates();
    let certs = rustls::pki_types::pem::PemObject::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<rustls::pki_types::CertificateDer>, _>>()
        .unwrap();
    let key = rustls::pki_types::pem::PemObject::from_pem_slice(key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if tls.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let body =
                    r#"{"world":"default","chunks":[{"key":[0,0,0],"version":7,"data":""}]}"#;
                let answer = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (
        format!("https://127.0.0.1:{}/prod/cubewalkblocks", addr.port()),
        ca_pem.into_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn untrusted_certificate_is_refused_and_reported_as_such() {
    let (endpoint, _) = https_server().await;
    let options = ClientOptions {
        retry: cubewalk::retry::RetryPolicy {
            max_retries: 0,
            ..Default::default()
        },
        ..ClientOptions::default()
    };
    let client = Client::new(&endpoint, "tls-token-1", options).unwrap();
    let err = client
        .fetch("default", &[(ChunkKey::new(0, 0, 0), None)])
        .await
        .unwrap_err();
    assert_eq!(err.status(), Status::Network);
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "error does not say why: {err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn certificate_is_accepted_once_its_ca_is_added() {
    let (endpoint, ca) = https_server().await;
    let options = ClientOptions {
        extra_root_ca_pem: Some(ca),
        ..ClientOptions::default()
    };
    let client = Client::new(&endpoint, "tls-token-1", options).unwrap();
    let got = client
        .fetch("default", &[(ChunkKey::new(0, 0, 0), None)])
        .await
        .unwrap();
    assert_eq!(got[0].version, 7);
    let bad = ClientOptions {
        extra_root_ca_pem: Some(b"not a certificate".to_vec()),
        ..ClientOptions::default()
    };
    assert_eq!(
        Client::new(&endpoint, "tls-token-1", bad)
            .unwrap_err()
            .status(),
        Status::InvalidArgument
    );
}
