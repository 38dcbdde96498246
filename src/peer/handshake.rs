//! The handshake rules of both sides: given the connection's current state and an
//! internal packet, what happens next. Pure functions returning [`Action`]s; the
//! transport carries them out.
//!
//! The checks mirror the original's internal `SmartPacket` classes: each internal
//! packet is valid only in one state and on one side; outside it, hello and settype
//! are ignored while handshake and accept close the connection with
//! "smartpacketinvalid".

use std::collections::HashMap;

use super::constants::{
    pid, reason, state, CONNTYPE_CLASSIC, CONNTYPE_NOTSET, HEARTBEAT_KEY, PROTOVERSION, VERSION,
};
use super::table::PacketTable;
use crate::protocol::msgpack::Value;
use crate::protocol::packet::{self, Compression};

/// Something the transport must do in response to a packet.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send an internal packet.
    Send {
        /// Its id.
        pid: u32,
        /// Its body.
        body: Value,
    },
    /// Set the connection state (visible to Python as `state`/`remote_state`).
    SetState(u32),
    /// Set the connection type.
    SetConntype(String),
    /// The handshake is complete: Python's `on_handshake_complete` must run.
    HandshakeComplete,
    /// The connection type's `init` is defined in Python and must run there.
    InitInPython(String),
    /// (client) The registry was synchronised with the server's: use this table, or
    /// (None) keep the one in use, which has the server's ids already. Either way the
    /// Python registry looks again (an app's `getObj`/`getInt` hear of each name).
    AdoptTable(Option<PacketTable>),
    /// Close the connection with this reason (a close packet is sent first).
    Close(String),
    /// The peer closed the connection with this reason; nothing is sent back.
    PeerClosed(Option<String>),
    /// Both sides offered heartbeats: start probing the peer (peng3dnet-rs only).
    StartHeartbeat,
}

/// How a connection type's `init` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConntypeKind {
    /// The built-in classic type with its `init` unchanged: the core runs it.
    NativeClassic,
    /// Anything else: its `init` runs in Python.
    Delegated,
}

/// The connection types a peer knows, by name.
pub type Conntypes = HashMap<String, ConntypeKind>;

fn hello_body(heartbeat: Option<f64>) -> Value {
    let mut pairs = vec![
        ("version", Value::from(VERSION)),
        ("protoversion", Value::from(PROTOVERSION)),
    ];
    if let Some(interval) = heartbeat {
        pairs.push((HEARTBEAT_KEY, Value::Float(interval)));
    }
    Value::map(pairs)
}

/// Whether the peer's hello or settype message offers heartbeats.
fn offers_heartbeat(msg: &Value) -> bool {
    matches!(
        msg.get(HEARTBEAT_KEY),
        Some(Value::Float(_) | Value::Int(_) | Value::UInt(_))
    )
}

fn protoversion_ok(msg: &Value) -> bool {
    msg.get("protoversion").and_then(Value::as_i64) == Some(PROTOVERSION)
}

/// The handshake's packets carry maps. Anything else closes the connection with a
/// protocol error (the original raised on it and left the connection half set up,
/// where a following accept could complete the handshake). A hello that is not a map
/// comes from a peer of another protocol: see `protoversion_ok`.
fn malformed(packet_id: u32, msg: &Value) -> Option<Vec<Action>> {
    let shaped = matches!(
        packet_id,
        pid::SETTYPE | pid::HANDSHAKE | pid::HANDSHAKE_ACCEPT
    );
    (shaped && !matches!(msg, Value::Map(_))).then(|| {
        vec![Action::Close(format!(
            "{}: the body of internal packet {packet_id} is not a map",
            reason::PROTOCOL_ERROR
        ))]
    })
}

/// The close packet with `reason`, as a complete frame: the one builder of the body
/// `{"reason": reason}` that the receiver reads back (`close_reason`).
pub fn close_packet(reason: Option<&str>, compression: &Compression) -> Vec<u8> {
    let body = Value::map([("reason", reason.map_or(Value::Nil, Value::from))]).to_bytes();
    let mut frame = Vec::with_capacity(body.len() + packet::FRAME_OVERHEAD);
    // Cannot fail: a reason is far below the 4 GiB a frame can hold.
    let _ = packet::encode_packet(pid::CLOSE, &body, compression, &mut frame);
    frame
}

/// The reason a close packet's body gives (`None`: none, as the original's `None`).
fn close_reason(msg: &Value) -> Option<String> {
    match msg.get("reason")? {
        Value::Nil => None,
        Value::Str(text) => Some(text.clone()),
        other => Some(format!("{other:?}")),
    }
}

/// What the server does with a newly accepted connection. `heartbeat`: the server's
/// heartbeat interval in seconds, offered to the client (`None`: heartbeats are off).
pub fn server_accept(heartbeat: Option<f64>) -> Vec<Action> {
    vec![
        Action::SetState(state::HELLOWAIT),
        Action::Send {
            pid: pid::HELLO,
            body: hello_body(heartbeat),
        },
        Action::SetState(state::WAITTYPE),
    ]
}

/// What the server's classic connection type does when a client chooses it: ask the
/// client to accept our registry.
pub fn server_classic_init(table: &PacketTable) -> Vec<Action> {
    vec![
        Action::SetState(state::HANDSHAKE_WAIT1),
        Action::Send {
            pid: pid::HANDSHAKE,
            body: Value::map([
                ("version", Value::from(VERSION)),
                ("protoversion", Value::from(PROTOVERSION)),
                ("registry", table.to_value()),
            ]),
        },
    ]
}

/// The server's response to internal packet `packet_id` with body `msg` on a
/// connection in state `current`. `heartbeat`: whether the server offered heartbeats.
pub fn server_packet(
    current: u32,
    packet_id: u32,
    msg: &Value,
    conntypes: &Conntypes,
    table: &PacketTable,
    heartbeat: bool,
) -> Vec<Action> {
    if let Some(close) = malformed(packet_id, msg) {
        return close;
    }
    match packet_id {
        pid::SETTYPE if current == state::WAITTYPE => {
            let chosen = match msg.get("conntype") {
                None => Some(CONNTYPE_CLASSIC),
                Some(value) => value.as_str(),
            };
            let Some((name, kind)) = chosen.and_then(|c| conntypes.get_key_value(c)) else {
                return vec![Action::Close(reason::UNKNOWN_CONNTYPE.to_owned())];
            };
            let mut actions = vec![Action::SetConntype(name.clone())];
            if heartbeat && offers_heartbeat(msg) {
                actions.push(Action::StartHeartbeat);
            }
            match kind {
                ConntypeKind::NativeClassic => actions.extend(server_classic_init(table)),
                ConntypeKind::Delegated => actions.push(Action::InitInPython(name.clone())),
            }
            actions
        }
        pid::HANDSHAKE_ACCEPT if current == state::HANDSHAKE_WAIT1 => {
            let accepted = msg.get("success").is_some_and(Value::is_truthy);
            if accepted {
                vec![Action::SetState(state::ACTIVE), Action::HandshakeComplete]
            } else {
                Vec::new()
            }
        }
        pid::HANDSHAKE_ACCEPT | pid::HANDSHAKE => {
            vec![Action::Close(reason::SMARTPACKET_INVALID.to_owned())]
        }
        pid::CLOSE => vec![Action::PeerClosed(close_reason(msg))],
        _ => Vec::new(),
    }
}

/// The client's settings that the handshake needs.
#[derive(Debug, Clone)]
pub struct ClientRules<'a> {
    /// The connection type to ask for (`Client(conntype=...)`).
    pub target_conntype: &'a str,
    /// How that connection type's `init` runs; `None` if the client does not know it.
    pub target_kind: Option<ConntypeKind>,
    /// The client's packet table.
    pub table: &'a PacketTable,
    /// `net.registry.autosync`.
    pub autosync: bool,
    /// `net.registry.missingpacketaction == "closeconnection"`.
    pub require_same_names: bool,
    /// The client's heartbeat interval in seconds, accepted if the server offers
    /// heartbeats (`None`: heartbeats are off).
    pub heartbeat: Option<f64>,
}

/// What the client does once connected.
pub fn client_connect() -> Vec<Action> {
    vec![Action::SetState(state::HELLOWAIT)]
}

/// What the client's classic connection type does once the connection type is sent.
pub fn client_classic_init() -> Vec<Action> {
    vec![Action::SetState(state::HANDSHAKE_WAIT1)]
}

/// The client's response to internal packet `packet_id` with body `msg`, with the
/// connection in state `current` and of connection type `conntype`.
pub fn client_packet(
    current: u32,
    conntype: &str,
    packet_id: u32,
    msg: &Value,
    rules: &ClientRules<'_>,
) -> Vec<Action> {
    if let Some(close) = malformed(packet_id, msg) {
        return close;
    }
    match packet_id {
        pid::HELLO if current == state::HELLOWAIT && conntype == CONNTYPE_NOTSET => {
            if !protoversion_ok(msg) {
                return vec![Action::Close(reason::PROTOVERSION_MISMATCH.to_owned())];
            }
            let Some(kind) = rules.target_kind else {
                return vec![Action::Close(reason::UNKNOWN_CONNTYPE.to_owned())];
            };
            let mut settype = vec![("conntype", Value::from(rules.target_conntype))];
            let heartbeat = rules.heartbeat.filter(|_| offers_heartbeat(msg));
            if let Some(interval) = heartbeat {
                settype.push((HEARTBEAT_KEY, Value::Float(interval)));
            }
            let mut actions = vec![
                Action::Send {
                    pid: pid::SETTYPE,
                    body: Value::map(settype),
                },
                Action::SetConntype(rules.target_conntype.to_owned()),
                Action::SetState(state::WAITTYPE),
            ];
            if heartbeat.is_some() {
                actions.push(Action::StartHeartbeat);
            }
            match kind {
                ConntypeKind::NativeClassic => actions.extend(client_classic_init()),
                ConntypeKind::Delegated => {
                    actions.push(Action::InitInPython(rules.target_conntype.to_owned()));
                }
            }
            actions
        }
        pid::HANDSHAKE if current == state::HANDSHAKE_WAIT1 => {
            if !protoversion_ok(msg) {
                return vec![Action::Close(reason::PROTOVERSION_MISMATCH.to_owned())];
            }
            let mut actions = Vec::new();
            if rules.autosync {
                let Some(remote) = msg.get("registry").and_then(PacketTable::parse_remote) else {
                    return vec![Action::Close(reason::INVALID_HANDSHAKE.to_owned())];
                };
                if rules.table.agrees_with(&remote) {
                    actions.push(Action::AdoptTable(None));
                } else {
                    match rules.table.synced_with(&remote, rules.require_same_names) {
                        Ok(table) => actions.push(Action::AdoptTable(Some(table))),
                        Err(_) => {
                            return vec![Action::Close(reason::PACKETREG_MISMATCH.to_owned())]
                        }
                    }
                }
            }
            actions.extend([
                Action::Send {
                    pid: pid::HANDSHAKE_ACCEPT,
                    body: Value::map([("success", Value::Bool(true))]),
                },
                Action::SetState(state::ACTIVE),
                Action::HandshakeComplete,
            ]);
            actions
        }
        pid::HANDSHAKE | pid::HANDSHAKE_ACCEPT => {
            vec![Action::Close(reason::SMARTPACKET_INVALID.to_owned())]
        }
        pid::CLOSE => vec![Action::PeerClosed(close_reason(msg))],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a handshake between a server and a client rule set in memory: each side's
    /// sends are delivered to the other until nobody sends anything.
    struct Pair {
        server_state: u32,
        server_conntype: String,
        client_state: u32,
        client_conntype: String,
        client_table: PacketTable,
        closed: Option<(&'static str, String)>,
        completed: (bool, bool),
        heartbeats: (bool, bool),
        delegated: Vec<(&'static str, String)>,
    }

    fn run(
        conntypes: &Conntypes,
        server_table: &PacketTable,
        client_table: PacketTable,
        rules_for: impl Fn(&PacketTable) -> (Option<ConntypeKind>, bool, bool, &'static str),
    ) -> Pair {
        run_with_heartbeats(
            conntypes,
            server_table,
            client_table,
            (None, None),
            rules_for,
        )
    }

    /// [`run`] with the server's and the client's heartbeat intervals.
    fn run_with_heartbeats(
        conntypes: &Conntypes,
        server_table: &PacketTable,
        client_table: PacketTable,
        heartbeat: (Option<f64>, Option<f64>),
        rules_for: impl Fn(&PacketTable) -> (Option<ConntypeKind>, bool, bool, &'static str),
    ) -> Pair {
        let mut pair = Pair {
            server_state: state::INIT,
            server_conntype: CONNTYPE_NOTSET.to_owned(),
            client_state: state::INIT,
            client_conntype: CONNTYPE_NOTSET.to_owned(),
            client_table,
            closed: None,
            completed: (false, false),
            heartbeats: (false, false),
            delegated: Vec::new(),
        };
        // (to_server, pid, body)
        let mut wire: Vec<(bool, u32, Value)> = Vec::new();
        let apply = |pair: &mut Pair, server: bool, actions: Vec<Action>, wire: &mut Vec<_>| {
            for action in actions {
                match action {
                    Action::Send { pid, body } => wire.push((!server, pid, body)),
                    Action::SetState(s) if server => pair.server_state = s,
                    Action::SetState(s) => pair.client_state = s,
                    Action::SetConntype(c) if server => pair.server_conntype = c,
                    Action::SetConntype(c) => pair.client_conntype = c,
                    Action::HandshakeComplete if server => pair.completed.0 = true,
                    Action::HandshakeComplete => pair.completed.1 = true,
                    Action::InitInPython(c) => pair
                        .delegated
                        .push((if server { "server" } else { "client" }, c)),
                    Action::AdoptTable(Some(t)) => pair.client_table = t,
                    Action::AdoptTable(None) => {}
                    Action::Close(r) => {
                        pair.closed = Some((if server { "server" } else { "client" }, r))
                    }
                    Action::PeerClosed(_) => {}
                    Action::StartHeartbeat if server => pair.heartbeats.0 = true,
                    Action::StartHeartbeat => pair.heartbeats.1 = true,
                }
            }
        };
        apply(&mut pair, true, server_accept(heartbeat.0), &mut wire);
        apply(&mut pair, false, client_connect(), &mut wire);
        while !wire.is_empty() && pair.closed.is_none() {
            let (to_server, packet, body) = wire.remove(0);
            let actions = if to_server {
                server_packet(
                    pair.server_state,
                    packet,
                    &body,
                    conntypes,
                    server_table,
                    heartbeat.0.is_some(),
                )
            } else {
                let (kind, autosync, same, target) = rules_for(&pair.client_table);
                let table = pair.client_table.clone();
                let rules = ClientRules {
                    target_conntype: target,
                    target_kind: kind,
                    table: &table,
                    autosync,
                    require_same_names: same,
                    heartbeat: heartbeat.1,
                };
                client_packet(
                    pair.client_state,
                    &pair.client_conntype.clone(),
                    packet,
                    &body,
                    &rules,
                )
            };
            apply(&mut pair, to_server, actions, &mut wire);
        }
        pair
    }

    fn classic() -> Conntypes {
        Conntypes::from([(CONNTYPE_CLASSIC.to_owned(), ConntypeKind::NativeClassic)])
    }

    fn tables() -> (PacketTable, PacketTable) {
        let mut server = PacketTable::with_internal_packets();
        server.insert("game:a", 64).unwrap();
        server.insert("game:b", 65).unwrap();
        let mut client = PacketTable::with_internal_packets();
        client.insert("game:b", 64).unwrap();
        client.insert("game:a", 65).unwrap();
        (server, client)
    }

    #[test]
    fn classic_handshake_completes_and_syncs_ids() {
        let (server, client) = tables();
        let pair = run(&classic(), &server, client, |_| {
            (
                Some(ConntypeKind::NativeClassic),
                true,
                true,
                CONNTYPE_CLASSIC,
            )
        });
        assert_eq!(pair.closed, None);
        assert_eq!(
            (pair.server_state, pair.client_state),
            (state::ACTIVE, state::ACTIVE)
        );
        assert_eq!(pair.completed, (true, true));
        assert_eq!(pair.server_conntype, CONNTYPE_CLASSIC);
        assert_eq!(pair.client_conntype, CONNTYPE_CLASSIC);
        assert_eq!(pair.client_table.id_of("game:a"), Some(64));
        assert_eq!(pair.client_table.id_of("game:b"), Some(65));
    }

    #[test]
    fn heartbeats_start_only_when_both_sides_offer_them() {
        let classic_rules = |_: &PacketTable| {
            (
                Some(ConntypeKind::NativeClassic),
                true,
                true,
                CONNTYPE_CLASSIC,
            )
        };
        for (server, client, expected) in [
            (Some(1.0), Some(2.0), (true, true)),
            (Some(1.0), None, (false, false)),
            (None, Some(2.0), (false, false)),
            (None, None, (false, false)),
        ] {
            let (server_table, client_table) = tables();
            let pair = run_with_heartbeats(
                &classic(),
                &server_table,
                client_table,
                (server, client),
                classic_rules,
            );
            assert_eq!(pair.closed, None);
            assert_eq!(pair.completed, (true, true));
            assert_eq!(
                pair.heartbeats, expected,
                "server {server:?}, client {client:?}"
            );
        }
        // The offer is an extra key that the original does not read.
        assert_eq!(
            hello_body(Some(1.5)).get(HEARTBEAT_KEY),
            Some(&Value::Float(1.5))
        );
        assert_eq!(hello_body(None).get(HEARTBEAT_KEY), None);
    }

    #[test]
    fn unknown_conntype_is_refused() {
        let (server, client) = tables();
        let pair = run(&classic(), &server, client, |_| {
            (Some(ConntypeKind::Delegated), true, true, "custom")
        });
        assert_eq!(
            pair.closed,
            Some(("server", reason::UNKNOWN_CONNTYPE.to_owned()))
        );
    }

    #[test]
    fn registry_mismatch_closes_or_is_ignored() {
        let (server, mut client) = tables();
        client.insert("game:extra", 70).unwrap();
        let strict = run(&classic(), &server, client.clone(), |_| {
            (
                Some(ConntypeKind::NativeClassic),
                true,
                true,
                CONNTYPE_CLASSIC,
            )
        });
        assert_eq!(
            strict.closed,
            Some(("client", reason::PACKETREG_MISMATCH.to_owned()))
        );
        let lenient = run(&classic(), &server, client, |_| {
            (
                Some(ConntypeKind::NativeClassic),
                true,
                false,
                CONNTYPE_CLASSIC,
            )
        });
        assert_eq!(lenient.closed, None);
        assert_eq!(lenient.client_table.id_of("game:extra"), Some(70));
    }

    #[test]
    fn delegated_conntype_stops_before_the_registry() {
        let (server, client) = tables();
        let mut conntypes = classic();
        conntypes.insert("ping".to_owned(), ConntypeKind::Delegated);
        let pair = run(&conntypes, &server, client, |_| {
            (Some(ConntypeKind::Delegated), true, true, "ping")
        });
        assert_eq!(pair.closed, None);
        assert_eq!(
            pair.delegated,
            vec![("client", "ping".to_owned()), ("server", "ping".to_owned())]
        );
        assert_eq!(
            (pair.server_state, pair.client_state),
            (state::WAITTYPE, state::WAITTYPE)
        );
    }

    #[test]
    fn protoversion_mismatch() {
        let rules = ClientRules {
            target_conntype: CONNTYPE_CLASSIC,
            target_kind: Some(ConntypeKind::NativeClassic),
            table: &PacketTable::with_internal_packets(),
            autosync: true,
            require_same_names: true,
            heartbeat: None,
        };
        let hello = Value::map([
            ("version", Value::from("9")),
            ("protoversion", Value::from(3u32)),
        ]);
        assert_eq!(
            client_packet(
                state::HELLOWAIT,
                CONNTYPE_NOTSET,
                pid::HELLO,
                &hello,
                &rules
            ),
            vec![Action::Close(reason::PROTOVERSION_MISMATCH.to_owned())]
        );
        assert_eq!(
            client_packet(
                state::HELLOWAIT,
                CONNTYPE_NOTSET,
                pid::HELLO,
                &Value::Nil,
                &rules
            ),
            vec![Action::Close(reason::PROTOVERSION_MISMATCH.to_owned())]
        );
    }

    #[test]
    fn packets_out_of_order() {
        let table = PacketTable::with_internal_packets();
        let conntypes = classic();
        // A second settype, or one before the hello was sent, is ignored.
        assert!(server_packet(
            state::ACTIVE,
            pid::SETTYPE,
            &Value::Map(Vec::new()),
            &conntypes,
            &table,
            false
        )
        .is_empty());
        // Accept before the handshake, or a handshake sent to the server, closes.
        for (current, packet) in [
            (state::WAITTYPE, pid::HANDSHAKE_ACCEPT),
            (state::ACTIVE, pid::HANDSHAKE),
        ] {
            assert_eq!(
                server_packet(
                    current,
                    packet,
                    &Value::Map(Vec::new()),
                    &conntypes,
                    &table,
                    false
                ),
                vec![Action::Close(reason::SMARTPACKET_INVALID.to_owned())]
            );
        }
        // A hello to the server is ignored.
        assert!(server_packet(
            state::WAITTYPE,
            pid::HELLO,
            &hello_body(None),
            &conntypes,
            &table,
            false
        )
        .is_empty());
        // An accept without success leaves the connection waiting.
        let refused = Value::map([("success", Value::Bool(false))]);
        assert!(server_packet(
            state::HANDSHAKE_WAIT1,
            pid::HANDSHAKE_ACCEPT,
            &refused,
            &conntypes,
            &table,
            false
        )
        .is_empty());
    }

    #[test]
    fn handshake_bodies_that_are_not_maps_close_with_a_protocol_error() {
        let table = PacketTable::with_internal_packets();
        let conntypes = classic();
        let list = Value::Array(vec![Value::UInt(1), Value::UInt(2)]);
        // A settype of [1, 2] must not choose the classic type (an accept could then
        // complete the handshake).
        let actions = server_packet(
            state::WAITTYPE,
            pid::SETTYPE,
            &list,
            &conntypes,
            &table,
            false,
        );
        assert!(
            matches!(&actions[..], [Action::Close(why)] if why.starts_with("protocolerror: ")),
            "{actions:?}"
        );
        let rules = ClientRules {
            target_conntype: CONNTYPE_CLASSIC,
            target_kind: Some(ConntypeKind::NativeClassic),
            table: &table,
            autosync: true,
            require_same_names: true,
            heartbeat: None,
        };
        let actions = client_packet(
            state::HANDSHAKE_WAIT1,
            CONNTYPE_CLASSIC,
            pid::HANDSHAKE,
            &Value::Nil,
            &rules,
        );
        assert!(
            matches!(&actions[..], [Action::Close(why)] if why.starts_with("protocolerror: ")),
            "{actions:?}"
        );
        // A close packet without a map closes with no reason, as in the original.
        assert_eq!(
            server_packet(state::ACTIVE, pid::CLOSE, &list, &conntypes, &table, false),
            vec![Action::PeerClosed(None)]
        );
    }

    #[test]
    fn settype_without_conntype_means_classic() {
        let table = PacketTable::with_internal_packets();
        let actions = server_packet(
            state::WAITTYPE,
            pid::SETTYPE,
            &Value::map::<&str>([]),
            &classic(),
            &table,
            false,
        );
        assert_eq!(actions[0], Action::SetConntype(CONNTYPE_CLASSIC.to_owned()));
        let bad = Value::map([("conntype", Value::from(5u32))]);
        assert_eq!(
            server_packet(
                state::WAITTYPE,
                pid::SETTYPE,
                &bad,
                &classic(),
                &table,
                false
            ),
            vec![Action::Close(reason::UNKNOWN_CONNTYPE.to_owned())]
        );
    }

    #[test]
    fn close_packet_reasons() {
        let table = PacketTable::with_internal_packets();
        let cases = [
            (
                Value::map([("reason", Value::from("bye"))]),
                Some("bye".to_owned()),
            ),
            (Value::map([("reason", Value::Nil)]), None),
            (Value::Nil, None),
            (Value::from("not a dict"), None),
        ];
        for (msg, expected) in cases {
            assert_eq!(
                server_packet(state::ACTIVE, pid::CLOSE, &msg, &classic(), &table, false),
                vec![Action::PeerClosed(expected)]
            );
        }
    }

    #[test]
    fn the_close_packet_we_build_reads_back_as_its_reason() {
        use crate::protocol::msgpack::ReadLimits;
        use crate::protocol::{FrameDecoder, Limits};
        let limits = Limits::default();
        for (reason, compression) in [
            (Some("bye"), Compression::default()),
            (None, Compression::default()),
            (
                Some("long reason ".repeat(100).as_str()),
                Compression {
                    enabled: true,
                    threshold: 16,
                    level: 6,
                },
            ),
        ] {
            let mut decoder = FrameDecoder::new(limits.max_frame_len);
            decoder.extend_from_slice(&close_packet(reason, &compression));
            let frame = decoder.decode().unwrap().expect("one whole frame");
            assert_eq!(frame.header.pid, pid::CLOSE);
            let body = packet::open_body(&frame, &limits).unwrap();
            let msg = Value::decode(&body, ReadLimits::from(&limits)).unwrap();
            assert_eq!(close_reason(&msg), reason.map(str::to_owned));
        }
    }
}
