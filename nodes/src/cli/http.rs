//! A tiny HTTP/1.1 client for the CLI's REST calls: one request per connection
//! (`Connection: close`), a `Content-Length` body, the response read to its end.
//!
//! It speaks to weir's own REST endpoint only, so it needs no TLS, general redirects or keep-alive
//! (a standby JobManager's pointer to the leader is followed once);
//! blocking std sockets with timeouts suit a command that makes a few calls and exits. Every
//! wait is bounded ([`CONNECT_TIMEOUT`], [`IO_TIMEOUT`]) and so is a response
//! ([`RESPONSE_BYTES_MAX`]).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Longest wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for one read or write.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response accepted.
const RESPONSE_BYTES_MAX: u64 = 16 << 20;

/// A REST endpoint, `host:port`.
#[derive(Clone, Debug)]
pub struct Endpoint {
    host_port: String,
    /// Sent as `Authorization: Bearer …` when set (the cluster's `security.token`).
    token: Option<String>,
}

/// A response: status code and body.
#[derive(Debug)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The first of Flink's `{"errors": [...]}`, else the body as text.
    pub fn error_message(&self) -> String {
        match self.json()["errors"][0].as_str() {
            Some(message) => message.to_string(),
            None => String::from_utf8_lossy(&self.body).trim().to_string(),
        }
    }
}

impl Endpoint {
    /// `host:port`, with or without `http://` in front.
    pub fn new(target: &str) -> Result<Endpoint, String> {
        let host_port = target.trim().trim_start_matches("http://").trim_end_matches('/');
        match host_port.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(Endpoint { host_port: host_port.to_string(), token: None })
            }
            _ => Err(format!("expected the JobManager's REST address as HOST:PORT, got {target:?}")),
        }
    }

    /// The endpoint, sending `token` as a bearer token with every request.
    pub fn with_token(self, token: Option<String>) -> Endpoint {
        Endpoint { token, ..self }
    }

    /// `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.host_port)
    }

    /// Sends one request; the error says when the endpoint cannot be reached. A standby
    /// JobManager's answer (503 naming the leader's REST address) is followed once, to the leader.
    pub fn request(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Response, String> {
        let response = self.request_once(method, path, body)?;
        let leader = (response.status == 503).then(|| response.json()["leader"].as_str().map(str::to_string));
        match leader.flatten().and_then(|leader| Endpoint::new(&leader).ok()) {
            Some(leader) => leader.with_token(self.token.clone()).request_once(method, path, body),
            None => Ok(response),
        }
    }

    fn request_once(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Response, String> {
        let mut stream = self.connect()?;
        let body = body.unwrap_or_default();
        let authorization = match &self.token {
            Some(token) => format!("Authorization: Bearer {token}\r\n"),
            None => String::new(),
        };
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: weir\r\nAccept: application/json\r\n\
             Content-Type: application/json\r\n{authorization}Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.host_port,
            body.len()
        );
        let broken = |error: std::io::Error| format!("{} {method} {path}: {error}", self.url());
        stream.write_all(head.as_bytes()).map_err(broken)?;
        stream.write_all(body).map_err(broken)?;
        let mut raw = Vec::new();
        stream.take(RESPONSE_BYTES_MAX).read_to_end(&mut raw).map_err(broken)?;
        parse_response(&raw).map_err(|error| format!("{} {method} {path}: {error}", self.url()))
    }

    fn connect(&self) -> Result<TcpStream, String> {
        let unreachable = |reason: String| format!("cannot reach the JobManager at {}: {reason}", self.url());
        let addresses: Vec<SocketAddr> =
            self.host_port.to_socket_addrs().map_err(|error| unreachable(error.to_string()))?.collect();
        let mut last_error = "the host name has no address".to_string();
        for address in addresses {
            match TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
                Ok(stream) => {
                    let configured = stream
                        .set_read_timeout(Some(IO_TIMEOUT))
                        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)));
                    configured.map_err(|error| unreachable(error.to_string()))?;
                    return Ok(stream);
                }
                Err(error) => {
                    last_error = match error.kind() {
                        ErrorKind::ConnectionRefused => "connection refused".to_string(),
                        ErrorKind::TimedOut => "connection timed out".to_string(),
                        _ => error.to_string(),
                    }
                }
            }
        }
        Err(unreachable(last_error))
    }
}

/// Splits a whole response into status and body, undoing chunked transfer encoding.
fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let split = raw.windows(4).position(|window| window == b"\r\n\r\n").ok_or("the response has no header end")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("not an HTTP status line: {status_line:?}"))?;
    let chunked = lines.any(|line| {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        name.trim().eq_ignore_ascii_case("transfer-encoding") && value.trim().eq_ignore_ascii_case("chunked")
    });
    let body = if chunked { dechunk(body)? } else { body.to_vec() };
    Ok(Response { status, body })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|window| window == b"\r\n").ok_or("a chunk has no size line")?;
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest.get(..size).ok_or("a chunk is cut short")?;
        body.extend_from_slice(chunk);
        rest = rest.get(size + 2..).ok_or("a chunk is cut short")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_split_into_status_and_body_chunked_or_not() {
        let plain = parse_response(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}").expect("valid");
        assert_eq!((plain.status, plain.body.as_slice()), (202, b"{}".as_slice()));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4;x=y\r\n\":1}\r\n0\r\n\r\n";
        let chunked = parse_response(chunked).expect("valid");
        assert_eq!(chunked.json(), serde_json::json!({"a": 1}));
        assert!(parse_response(b"garbage").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err());
    }

    #[test]
    fn flink_errors_are_read_from_the_body() {
        let response = Response { status: 404, body: br#"{"errors":["Job x not found"]}"#.to_vec() };
        assert_eq!(response.error_message(), "Job x not found");
        let response = Response { status: 500, body: b"oops\n".to_vec() };
        assert_eq!(response.error_message(), "oops");
    }

    #[test]
    fn endpoints_are_host_and_port_with_or_without_a_scheme() {
        assert_eq!(Endpoint::new("localhost:8081").expect("valid").url(), "http://localhost:8081");
        assert_eq!(Endpoint::new("http://10.0.0.1:80/").expect("valid").url(), "http://10.0.0.1:80");
        assert!(Endpoint::new("localhost").is_err());
        assert!(Endpoint::new(":8081").is_err());
        assert!(Endpoint::new("host:99999").is_err());
    }

    #[test]
    fn a_closed_port_is_reported_as_unreachable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        drop(listener);
        let error = Endpoint::new(&format!("127.0.0.1:{port}")).expect("valid").request("GET", "/", None);
        let error = error.expect_err("nothing listens");
        assert_eq!(error, format!("cannot reach the JobManager at http://127.0.0.1:{port}: connection refused"));
    }
}
