//! Bad input gets the spec's error, never a 500: unknown endpoints, wrong
//! methods, bad JSON, oversized bodies; and CORS on every answer.

use serde_json::Value;
use tests::{Deployment, Mode};

async fn error_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("errors are JSON");
    (status, body["errcode"].as_str().unwrap_or_default().to_owned())
}

/// POSTs `size` bytes over a raw connection, reading the answer while still
/// sending: a server may answer an oversized body before reading it, and
/// then stop reading, which an ordinary client reports as a broken pipe.
async fn raw_post(url: &reqwest::Url, framing: &str, size: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect((url.host_str().unwrap(), url.port().unwrap())).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\n{framing}Content-Type: application/json\r\n\r\n",
        url.path(),
        url.authority()
    );
    let chunked = framing.contains("chunked");
    let sending = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        let block = vec![b' '; 65536];
        let mut left = size;
        while left > 0 {
            let n = left.min(block.len());
            if chunked {
                writer.write_all(format!("{n:x}\r\n").as_bytes()).await?;
            }
            writer.write_all(&block[..n]).await?;
            if chunked {
                writer.write_all(b"\r\n").await?;
            }
            left -= n;
        }
        if chunked {
            writer.write_all(b"0\r\n\r\n").await?;
        }
        // Kept open until the answer is read, as clients do: a half-closed
        // connection would be a client giving up.
        Ok::<_, std::io::Error>(writer)
    });
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while !response.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = reader.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed without an answer");
        response.extend_from_slice(&buf[..n]);
    }
    sending.abort();
    let head = String::from_utf8_lossy(&response);
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
    head.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn bad_input_gets_spec_errors(deployment: &Deployment) {
    let client = reqwest::Client::new();
    // A body-carrying endpoint that needs no account: the notary key query.
    let query = format!("{}/_matrix/key/v2/query", deployment.federation_url);

    let unknown = client.get(deployment.url("/_matrix/client/v3/no/such/endpoint")).send().await.unwrap();
    assert_eq!(error_of(unknown).await, (404, "M_UNRECOGNIZED".into()));

    let unstable = client.get(deployment.url("/_matrix/client/unstable/org.example.nothing")).send().await.unwrap();
    assert_eq!(error_of(unstable).await, (404, "M_UNRECOGNIZED".into()));

    let wrong_method = client.delete(deployment.url("/_matrix/client/versions")).send().await.unwrap();
    assert_eq!(error_of(wrong_method).await, (405, "M_UNRECOGNIZED".into()));

    let not_json = client.post(&query).body("{not json").send().await.unwrap();
    assert_eq!(error_of(not_json).await, (400, "M_NOT_JSON".into()));

    let wrong_shape = client.post(&query).body(r#"{"server_keys": 5}"#).send().await.unwrap();
    assert_eq!(error_of(wrong_shape).await, (400, "M_BAD_JSON".into()));

    let limit = deployment.config.global.max_request_bytes;
    let url = reqwest::Url::parse(&query).unwrap();
    let length = format!("Content-Length: {}\r\n", limit + 1);
    assert_eq!(raw_post(&url, &length, limit + 1).await, 413, "declared too large");
    // Without a Content-Length, the limit is enforced while reading.
    assert_eq!(raw_post(&url, "Transfer-Encoding: chunked\r\n", limit + 1).await, 413, "chunked too large");

    // Query parameters clients add of their own are ignored.
    let busted = client.get(deployment.url("/_matrix/client/versions?_cacheBuster=123")).send().await.unwrap();
    assert_eq!(busted.status(), 200);
}

async fn cors_is_answered(deployment: &Deployment) {
    let client = reqwest::Client::new();
    let preflight = client
        .request(reqwest::Method::OPTIONS, deployment.url("/_matrix/client/v3/login"))
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let headers = preflight.headers();
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert!(headers["access-control-allow-headers"].to_str().unwrap().contains("Authorization"));
    let error = client.get(deployment.url("/nothing")).send().await.unwrap();
    assert_eq!(error.headers()["access-control-allow-origin"], "*", "errors carry CORS headers too");
}

#[tokio::test]
async fn monolith_answers_bad_input_with_spec_errors() {
    let deployment = Deployment::start(Mode::Monolith).await;
    bad_input_gets_spec_errors(&deployment).await;
    cors_is_answered(&deployment).await;
}

#[tokio::test]
async fn polylith_answers_bad_input_with_spec_errors() {
    let deployment = Deployment::start(Mode::Polylith).await;
    bad_input_gets_spec_errors(&deployment).await;
    cors_is_answered(&deployment).await;
}
