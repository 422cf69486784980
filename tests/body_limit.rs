//! The 4 KiB body limit over a real socket (axum::serve on 127.0.0.1, raw
//! TCP on the client side, so the test controls exactly what is sent):
//!
//! - a declared `Content-Length` above the limit is refused from the head
//!   alone: 413 arrives although not one body byte was sent;
//! - a chunked body that never ends is refused once the limit is read: 413
//!   arrives while the client is still sending (a server that read the
//!   whole body first would never answer).

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::{app::serve, builder_with};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tower_otp::delivery::MemoryOutbox;

/// Reads one HTTP/1.1 response with a Content-Length: status and body.
async fn read_response(reader: &mut (impl AsyncReadExt + Unpin)) -> (u16, Value) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = reader.read(&mut chunk).await.expect("read the response");
        assert!(n > 0, "connection closed before a response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status = head[9..12].parse().expect("a status code");
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .expect("a content-length");
    while buf.len() < head_end + length {
        let n = reader.read(&mut chunk).await.expect("read the body");
        assert!(n > 0, "connection closed in the body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or(Value::Null);
    (status, body)
}

async fn server() -> String {
    let base = serve(builder_with(&MemoryOutbox::new())).await;
    base.trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn a_declared_length_above_the_limit_is_refused_before_any_body_byte() {
    let addr = server().await;
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /send-otp/ HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: 1000000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // Not one body byte: only the declared length can explain a 413.
    let (status, body) = tokio::time::timeout(Duration::from_secs(5), read_response(&mut stream))
        .await
        .expect("no answer: the declared length was not refused up front");
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "payload_too_large", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_chunked_body_is_refused_at_the_limit_while_still_sending() {
    let addr = server().await;
    let stream = TcpStream::connect(&addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST /send-otp/ HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\n\r\n"
    );
    writer.write_all(head.as_bytes()).await.unwrap();

    // 1 KiB chunks every 2 ms, forever (never the final `0` chunk), until
    // the answer arrives or the server stops reading.
    let sent = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicBool::new(false));
    let still_sending = Arc::new(AtomicBool::new(true));
    let sender = {
        let (sent, answered, still_sending) =
            (sent.clone(), answered.clone(), still_sending.clone());
        tokio::spawn(async move {
            let chunk = format!("400\r\n{}\r\n", " ".repeat(1024));
            while !answered.load(Ordering::SeqCst) {
                if writer.write_all(chunk.as_bytes()).await.is_err() {
                    break;
                }
                sent.fetch_add(1024, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            still_sending.store(false, Ordering::SeqCst);
        })
    };

    let (status, body) = tokio::time::timeout(Duration::from_secs(10), read_response(&mut reader))
        .await
        .expect("no answer to an endless body: the server is reading it all before refusing");
    // The sender had not stopped on its own when the answer came.
    let sending_at_answer = still_sending.load(Ordering::SeqCst);
    let sent_at_answer = sent.load(Ordering::SeqCst);
    answered.store(true, Ordering::SeqCst);
    sender.await.unwrap();
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "payload_too_large", "{body}");
    assert!(
        sending_at_answer,
        "the answer came after the client stopped sending"
    );
    // Stopped near the 4 KiB limit, not after reading a large part of it.
    assert!(
        sent_at_answer < 256 * 1024,
        "{sent_at_answer} bytes sent before the answer"
    );
}
