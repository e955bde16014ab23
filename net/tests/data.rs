//! Data channels over real sockets on 127.0.0.1: many logical channels share one connection and
//! keep their order, credit comes back on it, bad peers are refused one connection at a time,
//! and connections that end or never come are reported.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use weir_core::ids::{AttemptNumber, JobId, SubtaskIndex, VertexIndex};
use weir_core::protocol::ExecutionId;
use weir_net::connection::{self, NetError};
use weir_net::data::{self, DataBuffer, DataConfig, DataLinks, LinkEvent, ServeEvent};
use weir_net::handshake::{Hello, PROTOCOL_VERSION, PeerRole};

const WAIT: Duration = Duration::from_secs(10);

fn execution(vertex: u32, subtask: u32) -> ExecutionId {
    ExecutionId {
        job: JobId::default(),
        vertex: VertexIndex(vertex),
        subtask: SubtaskIndex(subtask),
        attempt: AttemptNumber(0),
    }
}

/// Buffer `sequence` of channel `channel`: its bytes say which, and vary in length.
fn buffer(channel: u32, sequence: u32) -> DataBuffer {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&channel.to_le_bytes());
    bytes.extend_from_slice(&sequence.to_le_bytes());
    bytes.extend((0..(sequence * 97) % 5000).map(|at| (at ^ sequence ^ channel) as u8));
    DataBuffer {
        producer: execution(0, channel),
        consumer: execution(1, channel),
        edge: 0,
        elements: sequence,
        backlog: false,
        bytes,
    }
}

fn config(token: Option<&str>) -> DataConfig {
    DataConfig { token: token.map(String::from), ..DataConfig::default() }
}

async fn listen(config: DataConfig) -> (String, mpsc::UnboundedReceiver<ServeEvent>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1");
    let address = listener.local_addr().expect("bound").to_string();
    let (sender, receiver) = mpsc::unbounded_channel();
    let on_event = Arc::new(move |event| {
        let _ = sender.send(event);
    });
    let server = tokio::spawn(data::serve(listener, config, on_event));
    (address, receiver, server)
}

fn links(name: &str, config: DataConfig) -> (DataLinks, mpsc::UnboundedReceiver<LinkEvent>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let on_event = Arc::new(move |event| {
        let _ = sender.send(event);
    });
    (DataLinks::new(tokio::runtime::Handle::current(), name, config, on_event), receiver)
}

async fn next<T>(events: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, events.recv()).await.expect("an event within 10 s").expect("the sender lives")
}

/// The next buffer the listener delivers, skipping connection events.
async fn next_buffer(events: &mut mpsc::UnboundedReceiver<ServeEvent>) -> (DataBuffer, data::CreditReturn) {
    loop {
        if let ServeEvent::Buffer { buffer, credit, .. } = next(events).await {
            return (buffer, credit);
        }
    }
}

async fn next_lost(events: &mut mpsc::UnboundedReceiver<LinkEvent>) -> (String, String, Vec<data::DataCredit>) {
    loop {
        if let LinkEvent::Lost { peer, reason, undelivered } = next(events).await {
            return (peer.to_string(), reason, undelivered);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_share_one_connection_keep_their_order_and_get_credit_back() {
    let (channels, per_channel) = (4u32, 60u32);
    // Credit is the caller's to take: here every buffer of a channel may be in flight at once.
    let generous = DataConfig { channel_credits_max: per_channel, ..config(Some("t0k3n")) };
    let (address, mut served, _server) = listen(generous).await;
    let (links, mut linked) = links("tm-producer:1", config(Some("t0k3n")));
    // Task threads are plain std threads: each sends its own channel's buffers.
    let senders: Vec<_> = (0..channels)
        .map(|channel| {
            let (links, address) = (links.clone(), address.clone());
            std::thread::spawn(move || {
                for sequence in 0..per_channel {
                    links.send(&address, buffer(channel, sequence)).expect("queued");
                }
            })
        })
        .collect();
    senders.into_iter().for_each(|sender| sender.join().expect("the sender thread ends"));

    let mut seen: BTreeMap<u32, u32> = BTreeMap::new();
    let mut connections = 0;
    let mut credits = Vec::new();
    while seen.values().sum::<u32>() < channels * per_channel {
        match next(&mut served).await {
            ServeEvent::Connected { peer } => {
                assert_eq!(&*peer, "tm-producer:1", "the hello names the producer side's data address");
                connections += 1;
            }
            ServeEvent::Buffer { buffer: arrived, credit, .. } => {
                let channel = arrived.producer.subtask.0;
                let sequence = seen.entry(channel).or_default();
                assert_eq!(arrived, buffer(channel, *sequence), "channel {channel} in order, bytes intact");
                *sequence += 1;
                credits.push(credit);
            }
            ServeEvent::Closed { peer, reason } => panic!("{peer} closed: {reason}"),
        }
    }
    assert_eq!(connections, 1, "one connection carries every channel between two TaskManagers");
    assert_eq!(links.peers(), vec![address.clone()]);

    for credit in &credits {
        assert!(credit.give(1));
    }
    let mut returned: BTreeMap<u32, u32> = BTreeMap::new();
    while returned.values().sum::<u32>() < channels * per_channel {
        match next(&mut linked).await {
            LinkEvent::Credit { peer, credit } => {
                assert_eq!(&*peer, address.as_str());
                assert_eq!(credit.consumer, execution(1, credit.producer.subtask.0));
                *returned.entry(credit.producer.subtask.0).or_default() += credit.credits;
            }
            LinkEvent::Lost { reason, .. } => panic!("lost: {reason}"),
        }
    }
    assert_eq!(returned, (0..channels).map(|channel| (channel, per_channel)).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_oversize_another_version_and_a_wrong_token_close_only_their_own_connection() {
    let small = DataConfig { frame_bytes_max: 64 * 1024, ..config(Some("t0k3n")) };
    let (address, mut served, _server) = listen(small).await;
    let (good, _good_events) = links("tm-good:1", config(Some("t0k3n")));
    good.send(&address, buffer(0, 0)).expect("queued");
    assert_eq!(next_buffer(&mut served).await.0, buffer(0, 0));

    let mut garbage = TcpStream::connect(&address).await.expect("connect");
    garbage.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let mut rest = Vec::new();
    // Ends (at its end, or reset) only if the listener closes the connection.
    let read = tokio::time::timeout(WAIT, garbage.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the listener closes a connection that sends garbage");

    let (intruder, mut intruder_events) = links("tm-intruder:1", config(Some("wrong")));
    intruder.send(&address, buffer(1, 0)).expect("queued");
    let (_, reason, undelivered) = next_lost(&mut intruder_events).await;
    assert!(reason.contains("wrong cluster token"), "{reason}");
    assert_eq!(undelivered.iter().map(|credit| credit.credits).sum::<u32>(), 1, "the refused buffer is handed back");

    let old = Hello {
        version: PROTOCOL_VERSION + 1,
        role: PeerRole::TaskManager,
        name: "tm-future:1".into(),
        listen: None,
        token: Some("t0k3n".into()),
    };
    let refused = connection::connect(&address, &old, 1024).await;
    assert!(
        matches!(&refused, Err(NetError::Refused(reason)) if reason.contains("protocol version")),
        "{:?}",
        refused.err()
    );

    let (big, mut big_events) = links("tm-big:1", DataConfig { frame_bytes_max: 1024 * 1024, ..config(Some("t0k3n")) });
    let oversized = DataBuffer { bytes: vec![7; 100 * 1024], ..buffer(2, 0) };
    big.send(&address, oversized).expect("queued: the sender's own maximum is larger");
    let (peer, reason) = loop {
        if let ServeEvent::Closed { peer, reason } = next(&mut served).await {
            break (peer, reason);
        }
    };
    assert_eq!(&*peer, "tm-big:1", "only the oversized sender's connection closes");
    assert!(reason.contains("exceeds the maximum"), "{reason}");
    assert_eq!(next_lost(&mut big_events).await.0, address, "and its link reports the peer lost");

    good.send(&address, buffer(0, 1)).expect("queued");
    assert_eq!(next_buffer(&mut served).await.0, buffer(0, 1), "the good connection keeps working");
    let (later, _later_events) = links("tm-later:1", config(Some("t0k3n")));
    later.send(&address, buffer(3, 0)).expect("queued");
    assert_eq!(next_buffer(&mut served).await.0, buffer(3, 0), "the listener keeps accepting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_connection_is_reported_on_both_sides() {
    let (address, mut served, server) = listen(config(None)).await;
    let (producer_side, mut linked) = links("tm-a:1", config(None));
    producer_side.send(&address, buffer(0, 0)).expect("queued");
    next_buffer(&mut served).await;
    drop(producer_side);
    let reason = loop {
        if let ServeEvent::Closed { peer, reason } = next(&mut served).await {
            assert_eq!(&*peer, "tm-a:1");
            break reason;
        }
    };
    assert!(reason.contains("closed"), "{reason}");

    let (producer_side, mut linked_again) = links("tm-a:1", config(None));
    producer_side.send(&address, buffer(0, 1)).expect("queued");
    next_buffer(&mut served).await;
    server.abort(); // the consumer side goes away with every connection it accepted
    let (peer, reason, _) = next_lost(&mut linked_again).await;
    assert_eq!(peer, address);
    assert!(reason.contains("closed"), "{reason}");
    assert!(linked.try_recv().is_err(), "a link dropped by its owner reports nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_waits_for_a_peer_that_starts_listening_late() {
    let probe = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = probe.local_addr().expect("bound").to_string();
    drop(probe); // nobody listens yet
    let (links, _events) = links("tm-early:1", config(None));
    links.send(&address, buffer(0, 0)).expect("queued while connecting");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let listener = TcpListener::bind(&address).await.expect("rebind the same port");
    let (sender, mut served) = mpsc::unbounded_channel();
    let on_event = Arc::new(move |event| {
        let _ = sender.send(event);
    });
    tokio::spawn(data::serve(listener, config(None), on_event));
    assert_eq!(next_buffer(&mut served).await.0, buffer(0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_listens_is_reported_lost_after_the_give_up_time() {
    let probe = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = probe.local_addr().expect("bound").to_string();
    drop(probe);
    let give_up = Duration::from_millis(400);
    let (links, mut events) = links("tm-lonely:1", DataConfig { connect_give_up: give_up, ..config(None) });
    let started = tokio::time::Instant::now();
    links.send(&address, buffer(0, 0)).expect("queued");
    links.send(&address, buffer(0, 1)).expect("queued");
    let (peer, reason, undelivered) = next_lost(&mut events).await;
    assert!(started.elapsed() >= give_up / 2, "it retried for a while: {:?}", started.elapsed());
    assert_eq!(peer, address);
    assert!(reason.contains("no connection within"), "{reason}");
    assert_eq!(undelivered.len(), 1);
    assert_eq!(undelivered[0].credits, 2, "both queued buffers are handed back");
    // The link leaves the map right after it reported itself lost.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !links.peers().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the lost link is still there after {WAIT:?}");
        tokio::task::yield_now().await;
    }
    links.send(&address, buffer(0, 2)).expect("the next buffer opens a new link");
    let (_, _, undelivered) = next_lost(&mut events).await;
    assert_eq!(undelivered[0].credits, 1, "which is reported lost in turn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffer_above_the_frame_maximum_is_refused_at_the_sender() {
    let (links, _events) = links("tm-x:1", DataConfig { frame_bytes_max: 1024, ..config(None) });
    let refused = links.send("127.0.0.1:9", DataBuffer { bytes: vec![0; 2048], ..buffer(0, 0) });
    assert!(matches!(refused, Err(data::DataError::TooLarge { bytes: 2048, .. })), "{refused:?}");
    assert!(links.peers().is_empty(), "nothing was opened for it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_sending_beyond_its_credit_is_closed() {
    let strict = DataConfig { channel_credits_max: 2, ..config(None) };
    let (address, mut served, _server) = listen(strict).await;
    let (links, mut linked) = links("tm-greedy:1", config(None));
    let (first, credit) = next_buffer_after(&links, &address, &mut served, 0).await;
    assert_eq!(first, buffer(0, 0));
    assert!(credit.give(1), "answered: the channel may send two more");
    match next(&mut linked).await {
        LinkEvent::Credit { credit, .. } => assert_eq!(credit.credits, 1),
        LinkEvent::Lost { reason, .. } => panic!("lost: {reason}"),
    }
    for sequence in 1..3 {
        assert_eq!(next_buffer_after(&links, &address, &mut served, sequence).await.0, buffer(0, sequence));
    }
    links.send(&address, buffer(0, 3)).expect("queued");
    let reason = loop {
        match next(&mut served).await {
            ServeEvent::Closed { reason, .. } => break reason,
            ServeEvent::Buffer { buffer, .. } => panic!("a third unanswered buffer was delivered: {buffer:?}"),
            ServeEvent::Connected { .. } => {}
        }
    };
    assert!(reason.contains("without credit"), "{reason}");
    assert!(next_lost(&mut linked).await.1.contains("closed"), "the producer side learns it too");
}

async fn next_buffer_after(
    links: &DataLinks,
    address: &str,
    served: &mut mpsc::UnboundedReceiver<ServeEvent>,
    sequence: u32,
) -> (DataBuffer, data::CreditReturn) {
    links.send(address, buffer(0, sequence)).expect("queued");
    next_buffer(served).await
}
