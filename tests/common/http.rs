//! Bare HTTP/1.0 requests: berth's /metrics and probes, moto's own API. Shared by the tests
//! and the benchmark (which includes this file on its own).

/// A bare HTTP/1.0 GET: enough for /metrics and the probes.
pub async fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    http_request(addr, &format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")).await
}

/// A bare HTTP/1.0 POST of a JSON body: (status code, body), or None if nothing answers.
pub async fn http_post_json(addr: &str, path: &str, body: &serde_json::Value) -> Option<(u16, String)> {
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    http_request(addr, &request).await
}

/// Sends `request` as it is and reads the answer to its end: (status code, body).
async fn http_request(addr: &str, request: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}
