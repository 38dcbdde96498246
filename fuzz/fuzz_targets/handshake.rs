//! The handshake rules of both sides, given any state, packet id and decodable body.
//!
//! Invariants: no panic; the rules only ever ask to send internal packets, and a
//! registry they adopt maps every name to exactly one id.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use peng3dnet_core::peer::constants::{CONNTYPE_CLASSIC, CONNTYPE_NOTSET, INTERNAL_PACKETS};
use peng3dnet_core::peer::handshake::{
    client_packet, server_packet, Action, ClientRules, ConntypeKind, Conntypes,
};
use peng3dnet_core::peer::table::PacketTable;
use peng3dnet_core::protocol::msgpack::{ReadLimits, Value};

fuzz_target!(|data: &[u8]| {
    let [state, pid, flags, body @ ..] = data else { return };
    let Ok(msg) = Value::decode(body, ReadLimits::default()) else { return };
    let mut table = PacketTable::with_internal_packets();
    let _ = table.insert("fuzz:a", 64);
    let _ = table.insert("fuzz:b", 65);
    let conntypes = Conntypes::from([
        (CONNTYPE_CLASSIC.to_owned(), ConntypeKind::NativeClassic),
        ("ping".to_owned(), ConntypeKind::Delegated),
    ]);
    let state = u32::from(*state);
    let pid = u32::from(*pid % 20);
    let server = server_packet(state, pid, &msg, &conntypes, &table);
    let rules = ClientRules {
        target_conntype: CONNTYPE_CLASSIC,
        target_kind: Some(ConntypeKind::NativeClassic),
        table: &table,
        autosync: flags & 1 == 1,
        require_same_names: flags & 2 == 2,
    };
    let conntype = if flags & 4 == 4 { CONNTYPE_NOTSET } else { CONNTYPE_CLASSIC };
    let client = client_packet(state, conntype, pid, &msg, &rules);
    let internal: HashSet<u32> = INTERNAL_PACKETS.iter().map(|(_, id)| *id).collect();
    for action in server.iter().chain(client.iter()) {
        match action {
            Action::Send { pid, .. } => assert!(internal.contains(pid)),
            Action::AdoptTable(adopted) => {
                let ids: HashSet<u32> = adopted.entries().map(|(_, id)| id).collect();
                assert_eq!(ids.len(), adopted.len());
            }
            _ => {}
        }
    }
});
