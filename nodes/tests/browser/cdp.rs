//! Just enough of the Chrome DevTools protocol to drive one page: headless Chromium with a
//! debugging port, one WebSocket to its page, `Runtime.evaluate` and `Page.captureScreenshot`.
//! Blocking std only (the test needs no async runtime and no WebSocket crate).

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for the browser to start or answer one command.
const ANSWER_MAX: Duration = Duration::from_secs(15);

/// A headless Chromium with one page, killed when dropped.
pub struct Browser {
    child: Child,
    socket: TcpStream,
    next_id: u64,
}

impl Browser {
    /// Starts `chromium` with a fresh profile in `profile` and a window of `width`x`height`.
    pub fn start(chromium: &Path, profile: &Path, width: u32, height: u32) -> Browser {
        let _ = std::fs::remove_dir_all(profile);
        std::fs::create_dir_all(profile).expect("browser profile directory");
        let child = Command::new(chromium)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage"])
            .arg("--remote-debugging-port=0")
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--window-size={width},{height}"))
            .arg("--hide-scrollbars")
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium starts");
        let mut browser = Browser { child, socket: connect_to_page(profile), next_id: 0 };
        // The window size includes no browser frame in headless mode, but set the viewport exactly.
        let metrics = json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false});
        browser.call("Emulation.setDeviceMetricsOverride", metrics);
        browser.call("Page.enable", json!({}));
        // Every page keeps its uncaught errors and rejections for `errors`.
        let record = "window.__errors = []; \
            addEventListener('error', (event) => __errors.push(String(event.message))); \
            addEventListener('unhandledrejection', (event) => __errors.push(String(event.reason)));";
        browser.call("Page.addScriptToEvaluateOnNewDocument", json!({ "source": record }));
        browser
    }

    /// Sends one command and returns its `result`; panics on a protocol error.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        send_text(&mut self.socket, &json!({"id": id, "method": method, "params": params}).to_string());
        loop {
            let message: Value = serde_json::from_str(&read_text(&mut self.socket)).expect("DevTools sends JSON");
            if message["id"] == id {
                assert!(message["error"].is_null(), "{method} failed: {}", message["error"]);
                return message["result"].clone();
            }
        }
    }

    pub fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
    }

    /// The value of the JavaScript `expression` in the page (promises awaited).
    pub fn evaluate(&mut self, expression: &str) -> Value {
        let result = self
            .call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true, "awaitPromise": true}));
        assert!(result["exceptionDetails"].is_null(), "{expression} threw: {}", result["exceptionDetails"]);
        result["result"]["value"].clone()
    }

    /// Evaluates `expression` until it gives something other than null, false or an empty
    /// array, for at most `bound`; returns that value.
    pub fn wait_for(&mut self, expression: &str, what: &str, bound: Duration) -> Value {
        let started = Instant::now();
        loop {
            let value = self.evaluate(expression);
            let empty = value.is_null() || value == json!(false) || value.as_array().is_some_and(Vec::is_empty);
            if !empty {
                return value;
            }
            assert!(started.elapsed() < bound, "waited {bound:?} for {what}; last value {value}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The uncaught errors and unhandled rejections of the current document so far.
    pub fn errors(&mut self) -> Value {
        self.evaluate("window.__errors")
    }

    /// A PNG of the viewport.
    pub fn screenshot(&mut self) -> Vec<u8> {
        let result = self.call("Page.captureScreenshot", json!({"format": "png"}));
        decode_base64(result["data"].as_str().expect("screenshot data"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for Chromium to write its port to `DevToolsActivePort`, finds the page target and
/// opens a WebSocket to it.
fn connect_to_page(profile: &Path) -> TcpStream {
    let port_file: PathBuf = profile.join("DevToolsActivePort");
    let started = Instant::now();
    let port = loop {
        let text = std::fs::read_to_string(&port_file).unwrap_or_default();
        if let Some(port) = text.lines().next().and_then(|line| line.trim().parse::<u16>().ok()) {
            break port;
        }
        assert!(started.elapsed() < ANSWER_MAX, "chromium wrote no {} in {ANSWER_MAX:?}", port_file.display());
        std::thread::sleep(Duration::from_millis(50));
    };
    let page_path = loop {
        let targets = http_get(port, "/json/list");
        let page = targets.as_array().and_then(|targets| targets.iter().find(|target| target["type"] == "page"));
        let url = page.and_then(|page| page["webSocketDebuggerUrl"].as_str()).unwrap_or("");
        if let Some((_, path)) = url.split_once("/devtools/") {
            break format!("/devtools/{path}");
        }
        assert!(started.elapsed() < ANSWER_MAX, "chromium lists no page: {targets}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut socket = TcpStream::connect(("127.0.0.1", port)).expect("DevTools accepts");
    socket.set_read_timeout(Some(ANSWER_MAX)).expect("read timeout");
    let key = "d2Vpci1icm93c2VyLXRlc3Q="; // any 16 bytes in base64; the answer is not checked
    write!(
        socket,
        "GET {page_path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .expect("handshake sent");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        socket.read_exact(&mut byte).expect("handshake answer");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "no WebSocket upgrade: {head}");
    socket
}

fn http_get(port: u16, path: &str) -> Value {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return Value::Null };
    let _ = stream.set_read_timeout(Some(ANSWER_MAX));
    if write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").is_err() {
        return Value::Null;
    }
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut length = None;
    while reader.read_line(&mut line).is_ok_and(|read| read > 0) && line != "\r\n" {
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse::<usize>().ok();
        }
        line.clear();
    }
    let mut body = vec![0u8; length.unwrap_or(0)];
    if reader.read_exact(&mut body).is_err() {
        return Value::Null;
    }
    serde_json::from_slice(&body).unwrap_or(Value::Null)
}

/// One masked text frame (a client must mask; the key need not be secret here).
fn send_text(socket: &mut TcpStream, text: &str) {
    let payload = text.as_bytes();
    let mut frame = vec![0x81u8];
    match payload.len() {
        length @ 0..=125 => frame.push(0x80 | length as u8),
        length @ 126..=65535 => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(length as u16).to_be_bytes());
        }
        length => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(length as u64).to_be_bytes());
        }
    }
    let mask = [0x5a, 0x17, 0xc3, 0x88];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(index, byte)| byte ^ mask[index % 4]));
    socket.write_all(&frame).expect("frame sent");
}

/// The next text message (fragments joined; pings and other control frames skipped).
fn read_text(socket: &mut TcpStream) -> String {
    let mut message = Vec::new();
    loop {
        let mut head = [0u8; 2];
        socket.read_exact(&mut head).expect("a DevTools frame in time");
        let (fin, opcode) = (head[0] & 0x80 != 0, head[0] & 0x0f);
        let length = match head[1] & 0x7f {
            126 => {
                let mut bytes = [0u8; 2];
                socket.read_exact(&mut bytes).expect("length");
                u16::from_be_bytes(bytes) as usize
            }
            127 => {
                let mut bytes = [0u8; 8];
                socket.read_exact(&mut bytes).expect("length");
                u64::from_be_bytes(bytes) as usize
            }
            length => length as usize,
        };
        let mut payload = vec![0u8; length];
        socket.read_exact(&mut payload).expect("payload");
        assert_ne!(opcode, 0x8, "chromium closed the DevTools connection");
        if opcode == 0x1 || opcode == 0x0 {
            message.extend_from_slice(&payload);
            if fin {
                return String::from_utf8(message).expect("UTF-8 text frame");
            }
        }
    }
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {:?}", c as char),
    };
    let digits: Vec<u8> = text.bytes().filter(|c| *c != b'=').map(value).collect();
    let mut bytes = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut bits = 0u32;
        for (index, digit) in chunk.iter().enumerate() {
            bits |= u32::from(*digit) << (18 - 6 * index);
        }
        bytes.extend_from_slice(&bits.to_be_bytes()[1..chunk.len()]);
    }
    bytes
}
