//! RPC over real sockets on 127.0.0.1: envelopes arrive in order, a wrong token or garbage is
//! refused without disturbing other connections, and a peer that comes back is reconnected to.

use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use weir_core::ids::{Epoch, JobId};
use weir_core::protocol::{Address, ClientMessage, Envelope, Message};
use weir_net::connection::{self, NetError};
use weir_net::frame::DEFAULT_MAX_FRAME_BYTES;
use weir_net::handshake::{Hello, PROTOCOL_VERSION, PeerRole};
use weir_net::rpc::{self, Incoming, Peers};

fn hello(name: &str, token: Option<&str>) -> Hello {
    Hello {
        version: PROTOCOL_VERSION,
        role: PeerRole::TaskManager,
        name: name.to_string(),
        listen: None,
        token: token.map(String::from),
    }
}

fn envelope(request: u64) -> Envelope {
    let message = Message::Client(ClientMessage::Submitted { request, job_id: JobId::default() });
    Envelope { from: Address::Dispatcher, to: Address::Client(1), epoch: Epoch(1), message }
}

async fn listen(token: Option<&str>) -> (String, mpsc::Receiver<Incoming>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1");
    let address = listener.local_addr().expect("bound").to_string();
    let (sender, receiver) = mpsc::channel(1024);
    tokio::spawn(rpc::serve(listener, token.map(String::from), DEFAULT_MAX_FRAME_BYTES, sender));
    (address, receiver)
}

async fn next(receiver: &mut mpsc::Receiver<Incoming>) -> Incoming {
    tokio::time::timeout(Duration::from_secs(10), receiver.recv())
        .await
        .expect("a message within 10 s")
        .expect("the listener runs")
}

#[tokio::test]
async fn envelopes_arrive_in_order_with_their_sender() {
    let (address, mut incoming) = listen(Some("t0k3n")).await;
    let peers = Peers::new(hello("tm-a", Some("t0k3n")), DEFAULT_MAX_FRAME_BYTES);
    for request in 0..100 {
        assert!(peers.send(&address, envelope(request)));
    }
    for request in 0..100 {
        let message = next(&mut incoming).await;
        assert_eq!(message.peer.name, "tm-a");
        assert_eq!(message.envelope, envelope(request));
    }
}

#[tokio::test]
async fn a_wrong_token_is_refused_with_the_reason() {
    let (address, _incoming) = listen(Some("right")).await;
    let refused = connection::connect(&address, &hello("intruder", Some("wrong")), 1024).await;
    assert!(
        matches!(&refused, Err(NetError::Refused(reason)) if reason.contains("wrong cluster token")),
        "{:?}",
        refused.err()
    );
    let missing = connection::connect(&address, &hello("intruder", None), 1024).await;
    assert!(matches!(&missing, Err(NetError::Refused(reason)) if reason.contains("requires a token")));
}

#[tokio::test]
async fn garbage_and_oversize_frames_close_only_their_own_connection() {
    let (address, mut incoming) = listen(None).await;
    let mut garbage = TcpStream::connect(&address).await.expect("connect");
    garbage.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let mut huge = TcpStream::connect(&address).await.expect("connect");
    huge.write_all(&[0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]).await.expect("write");
    let peers = Peers::new(hello("tm-b", None), DEFAULT_MAX_FRAME_BYTES);
    assert!(peers.send(&address, envelope(7)));
    assert_eq!(next(&mut incoming).await.envelope, envelope(7), "the good peer is served");
}

#[tokio::test]
async fn a_peer_that_comes_back_is_reconnected_to() {
    let probe = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = probe.local_addr().expect("bound").to_string();
    drop(probe); // nobody listens yet
    let peers = Peers::new(hello("tm-c", None), DEFAULT_MAX_FRAME_BYTES);
    assert!(peers.send(&address, envelope(1)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let listener = TcpListener::bind(&address).await.expect("rebind the same port");
    let (sender, mut incoming) = mpsc::channel(16);
    tokio::spawn(rpc::serve(listener, None, DEFAULT_MAX_FRAME_BYTES, sender));
    assert_eq!(next(&mut incoming).await.envelope, envelope(1), "queued while the peer was away");
}
