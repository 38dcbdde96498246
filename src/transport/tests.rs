//! Loopback tests of the transport, without Python: a server and a client built from
//! the same parts the bindings use, talking over real sockets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::client::{is_active_state, ClientOptions, ClientShared};
use super::connection::Conn;
use super::connection::Event;
use super::peer::PeerCommon;
use super::server::ServerShared;
use super::settings::{Keepalive, Settings};
use super::socket::Endpoint;
use crate::peer::constants::{CONNTYPE_CLASSIC, INTERNAL_PACKETS};
use crate::peer::handshake::ConntypeKind;
use crate::protocol::msgpack::{ReadLimits, Value};
use crate::protocol::packet::{encode_packet, Compression};

const WAIT: Duration = Duration::from_secs(5);

fn server_with(packets: &[(&str, u32)]) -> (Arc<ServerShared>, SocketAddr) {
    let server = unbound_server(packets);
    let addr = server.bind(&["127.0.0.1:0".parse().unwrap()]).unwrap();
    server.start().unwrap();
    (server, addr)
}

/// A server with `packets` and the classic connection type, not yet bound.
fn unbound_server(packets: &[(&str, u32)]) -> Arc<ServerShared> {
    let server = ServerShared::new();
    {
        let mut table = server.common.table().write().unwrap();
        for (name, id) in INTERNAL_PACKETS
            .iter()
            .copied()
            .chain(packets.iter().copied())
        {
            table.insert(name, id).unwrap();
        }
    }
    server
        .common
        .conntypes()
        .write()
        .unwrap()
        .insert(CONNTYPE_CLASSIC.to_owned(), ConntypeKind::NativeClassic);
    server
}

fn client_with(packets: &[(&str, u32)]) -> Arc<ClientShared> {
    let client = ClientShared::new(ClientOptions {
        target_conntype: CONNTYPE_CLASSIC.to_owned(),
        autosync: true,
        require_same_names: true,
    });
    {
        let mut table = client.common.table().write().unwrap();
        for (name, id) in INTERNAL_PACKETS
            .iter()
            .copied()
            .chain(packets.iter().copied())
        {
            table.insert(name, id).unwrap();
        }
    }
    client
        .common
        .conntypes()
        .write()
        .unwrap()
        .insert(CONNTYPE_CLASSIC.to_owned(), ConntypeKind::NativeClassic);
    client
}

/// Takes events until `pick` returns something, or fails after [`WAIT`].
fn wait_for<T>(common: &PeerCommon, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        for event in common.take_events(1024, true, Some(Duration::from_millis(50))) {
            if let Some(found) = pick(&event) {
                return found;
            }
        }
    }
    panic!("the expected event did not arrive");
}

/// Encodes packet `pid` with body `value` as `conn`'s settings say and queues it.
fn send(conn: &Arc<Conn>, pid: u32, value: &Value) -> bool {
    let body = value.to_bytes();
    let mut out = Vec::new();
    encode_packet(pid, &body, &conn.settings().compression, &mut out).unwrap();
    conn.queue_frame(Bytes::from(out), body.len())
}

#[test]
fn handshake_syncs_ids_and_packets_flow_both_ways() {
    let (server, addr) = server_with(&[("test:a", 64), ("test:b", 65)]);
    // Registered in the other order: the handshake must give it the server's ids.
    let client = client_with(&[("test:b", 64), ("test:a", 65)]);
    let conn = client.connect(&[addr], WAIT, "127.0.0.1").unwrap();
    let (_, active) = client.wait_until(Some(WAIT), |_, state| state.is_some_and(is_active_state));
    assert!(active, "the handshake did not complete");
    assert_eq!(
        client.common.table().read().unwrap().id_of("test:a"),
        Some(64)
    );
    assert_eq!(
        client.common.table().read().unwrap().id_of("test:b"),
        Some(65)
    );

    assert!(send(&conn, 64, &Value::from("to the server")));
    let (cid, body) = wait_for(&server.common, |event| match event {
        Event::Packet {
            conn,
            pid: 64,
            body,
            ..
        } => Some((conn.cid, body.clone())),
        _ => None,
    });
    assert_eq!(
        Value::decode(&body, ReadLimits::default()).unwrap(),
        Value::from("to the server")
    );

    // Large and compressed, from the server's side.
    let big = Value::from("x".repeat(1 << 20));
    let server_conn = server.conn(cid).unwrap();
    assert!(send(&server_conn, 65, &big));
    let body = wait_for(&client.common, |event| match event {
        Event::Packet { pid: 65, body, .. } => Some(body.clone()),
        _ => None,
    });
    assert_eq!(Value::decode(&body, ReadLimits::default()).unwrap(), big);

    // A graceful close from the server: the client gets the reason.
    server_conn.close(Some("bye".to_owned()));
    let reason = wait_for(&client.common, |event| match event {
        Event::Closed { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(reason.as_deref(), Some("bye"));
    assert!(
        server.wait_all_gone(Some(WAIT)),
        "the server kept the closed connection"
    );
    server.stop(None);
}

/// A connected server and client whose connection is read directly on both sides.
fn direct_pair() -> (Arc<ServerShared>, Arc<ClientShared>, Arc<Conn>) {
    // Only the process's first few connections are read that way, and other tests
    // run at the same time: wait for a pair that got the places.
    let deadline = Instant::now() + WAIT;
    loop {
        let (server, addr) = server_with(&[("test:ping", 64), ("test:pong", 65)]);
        let client = client_with(&[("test:ping", 64), ("test:pong", 65)]);
        let conn = client.connect(&[addr], WAIT, "127.0.0.1").unwrap();
        let (_, active) =
            client.wait_until(Some(WAIT), |_, state| state.is_some_and(is_active_state));
        assert!(active, "the handshake did not complete");
        let served = server.connections();
        let client_reads = client.common.direct.reads(conn.fd);
        if client_reads && served.iter().all(|c| server.common.direct.reads(c.fd)) {
            return (server, client, conn);
        }
        server.stop(None);
        assert!(Instant::now() < deadline, "no places for direct readers");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn threads_waiting_for_events_read_their_sockets_themselves() {
    let (server, client, conn) = direct_pair();
    // Requests of growing size (up to several reads' worth) and their answers, each
    // side waiting in `take` while the other sends: in order and intact. The reader
    // tasks may win some races for the data, not all of them; on a loaded machine
    // they can win many, so small rounds go on until both sides have read inline.
    let mut server_conn = None;
    for round in 0..1000u64 {
        let size = if round < 40 {
            (round as usize) << 12
        } else {
            16
        };
        let request = Value::from("r".repeat(size));
        assert!(send(&conn, 64, &request));
        let (peer, body) = wait_for(&server.common, |event| match event {
            Event::Packet {
                conn,
                pid: 64,
                body,
                ..
            } => Some((conn.clone(), body.clone())),
            _ => None,
        });
        assert_eq!(
            Value::decode(&body, ReadLimits::default()).unwrap(),
            request
        );
        assert!(send(&peer, 65, &Value::UInt(round)));
        let answer = wait_for(&client.common, |event| match event {
            Event::Packet { pid: 65, body, .. } => Some(body.clone()),
            _ => None,
        });
        assert_eq!(
            Value::decode(&answer, ReadLimits::default()).unwrap(),
            Value::UInt(round)
        );
        let both_read_inline = conn.traffic().reads_inline > 0 && peer.traffic().reads_inline > 0;
        server_conn = Some(peer);
        if round >= 39 && both_read_inline {
            break;
        }
    }
    let server_conn = server_conn.unwrap();
    assert!(
        conn.traffic().reads_inline > 0,
        "the client never read inline"
    );
    assert!(
        server_conn.traffic().reads_inline > 0,
        "the server never read inline"
    );
    server.stop(None);
}

#[test]
fn large_compressed_bodies_keep_their_place_among_small_packets() {
    // Large bodies inflate on a bulk thread; what follows them must still arrive after
    // them, whoever reads the socket (here a thread waiting in `take`).
    let (server, _client, conn) = direct_pair();
    let sizes = [3 << 20, 16, 300 << 10, 40 << 10, 16, 1 << 20, 200 << 10, 16];
    let sent: Vec<Value> = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| Value::from(format!("{i}:").repeat(size / 2 + 1)))
        .collect();
    for value in &sent {
        assert!(send(&conn, 64, value));
    }
    let mut received = Vec::new();
    let deadline = Instant::now() + WAIT;
    while received.len() < sent.len() && Instant::now() < deadline {
        for event in server
            .common
            .take_events(1024, true, Some(Duration::from_millis(50)))
        {
            if let Event::Packet { pid: 64, body, .. } = event {
                received.push(Value::decode(&body, ReadLimits::default()).unwrap());
            }
        }
    }
    assert_eq!(received.len(), sent.len(), "packets lost");
    for (i, (got, expected)) in received.iter().zip(&sent).enumerate() {
        // (Not assert_eq: the values are megabytes long.)
        assert!(got == expected, "packet {i} is not the {i}th sent");
    }
    let traffic = conn.traffic();
    assert!(
        traffic.payload_out > traffic.wire_body_out * 10,
        "the bodies were not compressed"
    );
    server.stop(None);
}

#[test]
fn registry_mismatch_closes_both_sides_with_the_reason() {
    let (server, addr) = server_with(&[("test:a", 64)]);
    let client = client_with(&[("test:a", 64), ("test:extra", 65)]);
    client.connect(&[addr], WAIT, "127.0.0.1").unwrap();
    let reason = wait_for(&server.common, |event| match event {
        Event::Closed { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(reason.as_deref(), Some("packetregmismatch"));
    server.stop(None);
}

#[test]
fn oversized_frame_closes_only_that_connection() {
    let (server, addr) = server_with(&[("test:a", 64)]);
    let honest = client_with(&[("test:a", 64)]);
    let honest_conn = honest.connect(&[addr], WAIT, "127.0.0.1").unwrap();
    let (_, active) = honest.wait_until(Some(WAIT), |_, state| state.is_some_and(is_active_state));
    assert!(active);

    let mut hostile = std::net::TcpStream::connect(addr).unwrap();
    std::io::Write::write_all(&mut hostile, &u32::MAX.to_be_bytes()).unwrap();
    let reason = wait_for(&server.common, |event| match event {
        Event::Closed { reason, conn } if conn.cid != 1 => Some(reason.clone()),
        _ => None,
    });
    assert!(reason
        .unwrap()
        .starts_with("protocolerror: frame of 4294967295 bytes"));

    assert!(send(&honest_conn, 64, &Value::from("still fine")));
    wait_for(&server.common, |event| match event {
        Event::Packet { pid: 64, .. } => Some(()),
        _ => None,
    });
    server.stop(None);
}

/// Keepalive settings that make heartbeats observable in a test.
fn fast_heartbeats() -> Settings {
    Settings {
        keepalive: Some(Keepalive {
            interval: Duration::from_millis(50),
            timeout: Duration::from_millis(300),
        }),
        ..Settings::default()
    }
}

/// A raw socket that has read the server's hello and sent `settype`.
fn raw_peer_after_settype(addr: SocketAddr, settype: &Value) -> std::net::TcpStream {
    use std::io::{Read, Write};
    let mut raw = std::net::TcpStream::connect(addr).unwrap();
    let mut prefix = [0u8; 4];
    raw.read_exact(&mut prefix).unwrap();
    let mut hello = vec![0u8; u32::from_be_bytes(prefix) as usize];
    raw.read_exact(&mut hello).unwrap();
    let body = settype.to_bytes();
    let mut out = Vec::new();
    encode_packet(2, &body, &Compression::default(), &mut out).unwrap();
    raw.write_all(&out).unwrap();
    raw
}

#[test]
fn heartbeats_keep_an_idle_pair_connected_and_time_round_trips() {
    let (server, addr) = server_with(&[("test:a", 64)]);
    server.common.configure(fast_heartbeats());
    let client = client_with(&[("test:a", 64)]);
    client.common.configure(fast_heartbeats());
    let conn = client.connect(&[addr], WAIT, "127.0.0.1").unwrap();
    let (_, active) = client.wait_until(Some(WAIT), |_, state| state.is_some_and(is_active_state));
    assert!(active);
    // Silent apps for several timeouts: the heartbeats alone keep both sides alive.
    std::thread::sleep(Duration::from_millis(1000));
    assert!(!conn.is_finished(), "closed: {:?}", conn.close_reason());
    let server_conn = server.connections().pop().unwrap();
    assert!(!server_conn.is_finished());
    for stats in [conn.stats(), server_conn.stats()] {
        assert!(stats.heartbeat);
        assert!(stats
            .rtt
            .is_some_and(|rtt| rtt < Duration::from_millis(300)));
        assert!(stats.handshake_time.is_some());
        assert!(stats.traffic.frames_in >= 10, "{stats:?}");
    }
    server.stop(None);
}

#[test]
fn silent_peer_that_offered_heartbeats_is_closed_with_timeout() {
    let (server, addr) = server_with(&[]);
    server.common.configure(fast_heartbeats());
    let settype = Value::map([
        ("conntype", Value::from(CONNTYPE_CLASSIC)),
        (crate::peer::constants::HEARTBEAT_KEY, Value::Float(0.05)),
    ]);
    let _raw = raw_peer_after_settype(addr, &settype);
    let started = Instant::now();
    let reason = wait_for(&server.common, |event| match event {
        Event::Closed { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(reason.as_deref(), Some("timeout"));
    assert!(started.elapsed() < Duration::from_secs(2));
    server.stop(None);
}

#[test]
fn peer_that_did_not_offer_heartbeats_is_never_probed() {
    use std::io::Read;
    let (server, addr) = server_with(&[]);
    server.common.configure(fast_heartbeats());
    let settype = Value::map([("conntype", Value::from(CONNTYPE_CLASSIC))]);
    let mut raw = raw_peer_after_settype(addr, &settype);
    std::thread::sleep(Duration::from_millis(600));
    let conn = server
        .connections()
        .pop()
        .expect("the connection was closed");
    assert!(!conn.is_finished());
    assert!(!conn.stats().heartbeat);
    // Only the handshake packet arrived: no heartbeat (which the original could not
    // have understood).
    raw.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut prefix = [0u8; 4];
    raw.read_exact(&mut prefix).unwrap();
    let mut handshake = vec![0u8; u32::from_be_bytes(prefix) as usize];
    raw.read_exact(&mut handshake).unwrap();
    assert_eq!(u32::from_be_bytes(handshake[..4].try_into().unwrap()), 3);
    assert!(raw.read(&mut [0u8; 1]).is_err(), "something else was sent");
    server.stop(None);
}

#[test]
fn direct_and_queued_writes_from_many_threads_never_interleave() {
    let (server, addr) = server_with(&[("test:a", 64)]);
    let client = client_with(&[("test:a", 64)]);
    let conn = client.connect(&[addr], WAIT, "127.0.0.1").unwrap();
    let (_, active) = client.wait_until(Some(WAIT), |_, state| state.is_some_and(is_active_state));
    assert!(active);
    // Bursts (queued for the writer), pauses (written directly) and frames larger than
    // the socket buffer (written partly directly, the rest queued), from three threads.
    const PER_THREAD: u64 = 300;
    let senders: Vec<_> = (0..3u64)
        .map(|thread| {
            let conn = conn.clone();
            std::thread::spawn(move || {
                for seq in 0..PER_THREAD {
                    let size = match seq % 7 {
                        0 => 3 << 20,
                        1 | 2 => 20_000,
                        _ => 10,
                    };
                    let body = Value::Array(vec![
                        Value::UInt(thread),
                        Value::UInt(seq),
                        Value::Bin(vec![(seq % 251) as u8; size]),
                    ]);
                    assert!(send(&conn, 64, &body));
                    if seq % 5 == 0 {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
            })
        })
        .collect();
    for sender in senders {
        sender.join().unwrap();
    }
    let mut next = [0u64; 3];
    let deadline = Instant::now() + Duration::from_secs(30);
    while next.iter().sum::<u64>() < 3 * PER_THREAD {
        assert!(Instant::now() < deadline, "packets missing: {next:?}");
        for event in server
            .common
            .inbox
            .take(1024, true, Some(Duration::from_millis(50)))
        {
            let Event::Packet { pid: 64, body, .. } = &event else {
                continue;
            };
            let Value::Array(items) = Value::decode(body, ReadLimits::default()).unwrap() else {
                panic!("mangled packet");
            };
            let [Value::UInt(thread), Value::UInt(seq), Value::Bin(blob)] = &items[..] else {
                panic!("mangled packet: {items:?}");
            };
            let thread = *thread as usize;
            assert_eq!(*seq, next[thread], "thread {thread}'s packets out of order");
            assert!(blob.iter().all(|&b| b == (seq % 251) as u8));
            next[thread] += 1;
        }
    }
    assert_eq!(conn.queued_bytes(), 0);
    server.stop(None);
}

// --- the in-process transport ------------------------------------------------------

fn memory_server(name: &str, packets: &[(&str, u32)]) -> Arc<ServerShared> {
    let server = unbound_server(packets);
    server.bind_memory(name).unwrap();
    server.start().unwrap();
    server
}

#[test]
fn memory_pair_handshakes_exchanges_packets_and_closes_with_the_reason() {
    let server = memory_server("tests-pair", &[("test:a", 64), ("test:b", 65)]);
    let client = client_with(&[("test:b", 64), ("test:a", 65)]);
    let conn = client.connect_memory("tests-pair").unwrap();
    let (_, active) = client.wait_until(Some(WAIT), |_, state| state.is_some_and(is_active_state));
    assert!(active, "the handshake did not complete");
    assert_eq!(conn.fd, -1);
    let cid = match &conn.local_addr {
        Endpoint::Memory { name, port } => {
            assert_eq!(&**name, "tests-pair");
            *port
        }
        other => panic!("a memory connection has local address {other}"),
    };
    assert!(cid > 0);
    // Bodies above the compression threshold go uncompressed: nothing to save in memory.
    let big = Value::from("x".repeat(100_000));
    assert!(send(&conn, 65, &big));
    let (got_cid, flags, body) = wait_for(&server.common, |event| match event {
        Event::Packet {
            conn,
            pid: 65,
            flags,
            body,
        } => Some((conn.cid, *flags, body.clone())),
        _ => None,
    });
    assert_eq!(got_cid, cid);
    assert!(!crate::protocol::Flags::from_bits(flags).contains(crate::protocol::Flags::COMPRESSED));
    assert_eq!(Value::decode(&body, ReadLimits::default()).unwrap(), big);
    let server_conn = server.conn(cid).unwrap();
    assert_eq!(
        server_conn.peer_addr,
        Endpoint::Memory {
            name: Arc::from("tests-pair"),
            port: cid
        }
    );
    assert!(!server_conn.stats().heartbeat);
    server_conn.close(Some("bye".to_owned()));
    let reason = wait_for(&client.common, |event| match event {
        Event::Closed { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(reason.as_deref(), Some("bye"));
    assert!(server.wait_all_gone(Some(WAIT)));
    server.stop(None);
}

#[test]
fn memory_names_are_exclusive_until_the_server_stops() {
    let first = memory_server("tests-exclusive", &[]);
    let second = unbound_server(&[]);
    let err = second.bind_memory("tests-exclusive").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    first.stop(None);
    second.bind_memory("tests-exclusive").unwrap();
    second.stop(None);
    let err = client_with(&[])
        .connect_memory("tests-exclusive")
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    let err = client_with(&[]).connect_memory("with space").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn full_memory_server_tells_the_client_why() {
    let server = memory_server("tests-full", &[]);
    server.set_max_connections(0);
    let client = client_with(&[]);
    client.connect_memory("tests-full").unwrap();
    let reason = wait_for(&client.common, |event| match event {
        Event::Closed { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(reason.as_deref(), Some("serverfull"));
    server.stop(None);
}

// --- the event loop's wake-up socket ------------------------------------------------

#[cfg(unix)]
#[test]
fn wakeup_socket_is_written_once_per_armed_wait() {
    use super::connection::Inbox;
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let log = |text: &str| Event::PeerLog {
        level: super::connection::LogLevel::Info,
        message: text.into(),
    };
    let inbox = Inbox::new();
    assert!(
        !inbox.arm_wakeup(),
        "nothing to arm before the socket exists"
    );
    let fd = inbox.wakeup_fd().unwrap();
    assert!(fd >= 0);
    // SAFETY: the inbox owns the descriptor; ManuallyDrop keeps this view from
    // closing it.
    let reader = std::mem::ManuallyDrop::new(unsafe {
        std::os::unix::net::UnixStream::from_raw_fd(i32::try_from(fd).unwrap())
    });
    // Reads (the socket is non-blocking): whether a wake-up byte was there.
    let woken = || {
        let mut byte = [0u8; 8];
        matches!((&*reader).read(&mut byte), Ok(n) if n > 0)
    };
    // Unarmed: a push writes nothing (threaded apps and busy loops pay no syscall).
    inbox.push(log("first"));
    assert!(!woken());
    assert!(!inbox.arm_wakeup(), "an event is waiting: take it instead");
    assert_eq!(inbox.take(10, false, None).len(), 1);
    assert!(inbox.arm_wakeup());
    inbox.push(log("second"));
    assert!(woken(), "the armed wait was not woken");
    // One byte per armed wait: the next push finds the socket disarmed.
    inbox.push(log("third"));
    assert!(!woken());
    inbox.close_wakeup();
    assert_eq!(inbox.wakeup_fd().unwrap(), -1);
}

#[cfg(unix)] // direct reading and event-loop watching exist on unix only
/// Waits (at most `ms` milliseconds) until `fd` is readable, without reading it.
fn poll_readable(fd: i64, ms: i32) -> bool {
    let mut pollfd = libc::pollfd {
        fd: fd as libc::c_int,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd record for the duration of the call.
    unsafe { libc::poll(&mut pollfd, 1, ms) > 0 }
}

#[cfg(unix)]
/// The next packet with id 65 among `client`'s events, waiting on the inbox alone
/// (at most [`WAIT`]): no thread reads the sockets meanwhile, as under an event loop.
fn next_pong(client: &ClientShared) -> u64 {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        for event in client
            .common
            .inbox
            .take(1, true, Some(Duration::from_millis(50)))
        {
            if let Event::Packet { pid: 65, body, .. } = event {
                match Value::decode(&body, ReadLimits::default()).unwrap() {
                    Value::UInt(n) => return n,
                    other => panic!("unexpected body {other:?}"),
                }
            }
        }
    }
    panic!("the packet did not arrive");
}

#[cfg(unix)]
#[test]
fn an_event_loop_watching_the_sockets_reads_what_arrives() {
    let (server, client, conn) = direct_pair();
    let served = server.connections().pop().unwrap();
    let direct = &client.common.direct;
    for round in 0..20u64 {
        let fds = direct.watch_sockets();
        assert_eq!(fds, vec![conn.fd]);
        assert!(send(&served, 65, &Value::UInt(round)));
        // As a loop does: wait for a watched socket, read it, stop waiting once events
        // are queued. The reader task may have taken the data first (then it queued it).
        let deadline = Instant::now() + WAIT;
        while client.common.inbox.is_empty() && Instant::now() < deadline {
            if poll_readable(conn.fd, 10) {
                let (dropped, _ready) = direct.read_watched_sockets();
                assert!(dropped.is_empty(), "a live socket was given up");
            }
        }
        direct.unwatch_sockets();
        assert_eq!(next_pong(&client), round, "packets out of order");
    }
    assert!(
        conn.traffic().reads_inline > 0,
        "the loop never read its socket"
    );
    server.stop(None);
}

#[cfg(unix)]
#[test]
fn data_left_to_a_watcher_is_read_when_it_stops_watching() {
    let (server, client, conn) = direct_pair();
    let served = server.connections().pop().unwrap();
    let direct = &client.common.direct;
    for round in 0..20u64 {
        direct.watch_sockets();
        assert!(send(&served, 65, &Value::UInt(round)));
        // The watcher sees the data arrive but does not read it: the reader task has
        // left it alone (the socket is watched), so unwatching must read it.
        poll_readable(conn.fd, 1000);
        std::thread::sleep(Duration::from_millis(2));
        direct.unwatch_sockets();
        assert_eq!(next_pong(&client), round, "a packet was lost or reordered");
    }
    assert!(
        conn.traffic().reads_inline > 0,
        "nothing was ever left to the watcher"
    );
    server.stop(None);
}

#[cfg(unix)]
/// The inode of the socket `fd` refers to now (None: the descriptor is closed).
fn socket_inode(fd: i64) -> Option<libc::ino_t> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a whole `stat` record on success and nothing otherwise.
    let ok = unsafe { libc::fstat(fd as libc::c_int, stat.as_mut_ptr()) } == 0;
    // SAFETY: initialised by the successful call above.
    ok.then(|| unsafe { stat.assume_init() }.st_ino)
}

#[cfg(unix)]
#[test]
fn a_socket_an_event_loop_was_told_to_drop_stays_open_until_it_stops_watching() {
    // libuv aborts the process if a descriptor it watches is closed (and reused by the
    // next socket) before it stops watching it.
    let (server, client, conn) = direct_pair();
    let served = server.connections().pop().unwrap();
    let direct = &client.common.direct;
    let inode = socket_inode(conn.fd).expect("the socket is open");
    assert_eq!(direct.watch_sockets(), vec![conn.fd]);
    served.close(Some("bye".to_owned()));
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(
            Instant::now() < deadline,
            "the closed socket was never dropped"
        );
        if poll_readable(conn.fd, 10) && direct.read_watched_sockets().0 == vec![conn.fd] {
            break;
        }
    }
    // Long enough for both ends to hang up and the connection's tasks to end.
    let ended = Instant::now() + WAIT;
    while !conn.is_finished() && Instant::now() < ended {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        socket_inode(conn.fd),
        Some(inode),
        "the descriptor closed while the loop still watched it"
    );
    direct.unwatch_sockets();
    server.stop(None);
}
