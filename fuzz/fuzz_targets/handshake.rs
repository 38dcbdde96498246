//! The handshake rules of both sides, given any state, packet id, decodable body and
//! settings (heartbeats on either side, every kind of connection type).
//!
//! Invariants: no panic; the rules only ever ask to send the handshake's own packets
//! (never a user packet, never a heartbeat: those are the transport's); the states they
//! set are states of the protocol; heartbeats start only on a side that has them on; a
//! registry they adopt maps every name to exactly one id; a close has a reason.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use peng3dnet_core::peer::constants::{state, CONNTYPE_CLASSIC, CONNTYPE_NOTSET, INTERNAL_PACKETS};
use peng3dnet_core::peer::handshake::{
    client_packet, server_packet, Action, ClientRules, ConntypeKind, Conntypes,
};
use peng3dnet_core::peer::table::PacketTable;
use peng3dnet_core::protocol::msgpack::{ReadLimits, Value};

const STATES: [u32; 6] = [
    state::INIT,
    state::HANDSHAKE_WAIT1,
    state::WAITTYPE,
    state::HELLOWAIT,
    state::ACTIVE,
    state::CLOSED,
];

fn check(actions: &[Action], heartbeats_on: bool) {
    let internal: HashSet<u32> = INTERNAL_PACKETS.iter().map(|(_, id)| *id).collect();
    for action in actions {
        match action {
            Action::Send { pid, body } => {
                assert!(internal.contains(pid), "sent packet {pid}");
                assert!(matches!(body, Value::Map(_)), "a handshake body is a map");
            }
            Action::SetState(value) => assert!(STATES.contains(value), "state {value}"),
            Action::StartHeartbeat => assert!(heartbeats_on, "heartbeats started while off"),
            Action::AdoptTable(Some(adopted)) => {
                let ids: HashSet<u32> = adopted.entries().map(|(_, id)| id).collect();
                assert_eq!(ids.len(), adopted.len());
            }
            Action::Close(reason) => assert!(!reason.is_empty()),
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [state_pick, pid, flags, body @ ..] = data else { return };
    let Ok(msg) = Value::decode(body, ReadLimits::default()) else { return };
    let mut table = PacketTable::with_internal_packets();
    let _ = table.insert("fuzz:a", 64);
    let _ = table.insert("fuzz:b", 65);
    let conntypes = Conntypes::from([
        (CONNTYPE_CLASSIC.to_owned(), ConntypeKind::NativeClassic),
        ("ping".to_owned(), ConntypeKind::Delegated),
    ]);
    // Mostly the protocol's states, sometimes any number.
    let current = STATES
        .get(usize::from(*state_pick % 8))
        .copied()
        .unwrap_or(u32::from(*state_pick));
    // Every internal id (1-4, 16, the heartbeat's 32) and some unknown ones.
    let pid = u32::from(*pid % 40);

    let server_heartbeats = flags & 8 == 8;
    let server = server_packet(current, pid, &msg, &conntypes, &table, server_heartbeats);
    check(&server, server_heartbeats);

    let client_heartbeats = flags & 16 == 16;
    let (target, kind) = match (flags >> 5) & 3 {
        0 => (CONNTYPE_CLASSIC, Some(ConntypeKind::NativeClassic)),
        1 => ("ping", Some(ConntypeKind::Delegated)),
        2 => ("unknown", None),
        _ => (CONNTYPE_CLASSIC, Some(ConntypeKind::Delegated)),
    };
    let rules = ClientRules {
        target_conntype: target,
        target_kind: kind,
        table: &table,
        autosync: flags & 1 == 1,
        require_same_names: flags & 2 == 2,
        heartbeat: client_heartbeats.then_some(0.5),
    };
    let conntype = if flags & 4 == 4 { CONNTYPE_NOTSET } else { target };
    let client = client_packet(current, conntype, pid, &msg, &rules);
    check(&client, client_heartbeats);
});
