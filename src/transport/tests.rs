//! Loopback tests of the transport, without Python: a server and a client built from
//! the same parts the bindings use, talking over real sockets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::client::{is_active_state, ClientOptions, ClientShared};
use super::inbox::{Event, Inbox};
use super::server::ServerShared;
use crate::peer::constants::{CONNTYPE_CLASSIC, INTERNAL_PACKETS};
use crate::peer::handshake::ConntypeKind;
use crate::protocol::msgpack::{ReadLimits, Value};
use crate::protocol::packet::{encode_packet, Compression};

const WAIT: Duration = Duration::from_secs(5);

fn server_with(packets: &[(&str, u32)]) -> (Arc<ServerShared>, SocketAddr) {
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
    let addr = server.bind(&["127.0.0.1:0".parse().unwrap()]).unwrap();
    server.start().unwrap();
    (server, addr)
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
fn wait_for<T>(inbox: &Inbox, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        for event in inbox.take(1024, true, Some(Duration::from_millis(50))) {
            if let Some(found) = pick(&event) {
                return found;
            }
        }
    }
    panic!("the expected event did not arrive");
}

fn frame(pid: u32, value: &Value) -> Bytes {
    let mut out = Vec::new();
    encode_packet(pid, &value.to_bytes(), &Compression::default(), &mut out).unwrap();
    Bytes::from(out)
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

    assert!(conn.queue_frame(frame(64, &Value::from("to the server"))));
    let (cid, body) = wait_for(&server.common.inbox, |event| match event {
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
    assert!(server_conn.queue_frame(frame(65, &big)));
    let body = wait_for(&client.common.inbox, |event| match event {
        Event::Packet { pid: 65, body, .. } => Some(body.clone()),
        _ => None,
    });
    assert_eq!(Value::decode(&body, ReadLimits::default()).unwrap(), big);

    // A graceful close from the server: the client gets the reason.
    server_conn.close(Some("bye".to_owned()));
    let reason = wait_for(&client.common.inbox, |event| match event {
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

#[test]
fn registry_mismatch_closes_both_sides_with_the_reason() {
    let (server, addr) = server_with(&[("test:a", 64)]);
    let client = client_with(&[("test:a", 64), ("test:extra", 65)]);
    client.connect(&[addr], WAIT, "127.0.0.1").unwrap();
    let reason = wait_for(&server.common.inbox, |event| match event {
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
    let reason = wait_for(&server.common.inbox, |event| match event {
        Event::Closed { reason, conn } if conn.cid != 1 => Some(reason.clone()),
        _ => None,
    });
    assert!(reason
        .unwrap()
        .starts_with("protocolerror: frame of 4294967295 bytes"));

    assert!(honest_conn.queue_frame(frame(64, &Value::from("still fine"))));
    wait_for(&server.common.inbox, |event| match event {
        Event::Packet { pid: 64, .. } => Some(()),
        _ => None,
    });
    server.stop(None);
}
