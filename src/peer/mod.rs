//! The peer rules: handshake state machines and the packet table, with no I/O.
//!
//! ```text
//! server connection                                client
//! -----------------                                ------
//! accept: state HELLOWAIT                          connect: state HELLOWAIT
//!   send hello {version, protoversion}  ------->   hello: check protoversion
//!   state WAITTYPE                                   send settype {conntype}
//!                                      <-------      conntype := target, state WAITTYPE
//! settype: known conntype? else close                classic init: state HANDSHAKE_WAIT1
//!   "unknownconntype"; conntype := t                 (other conntypes: init runs in Python)
//!   classic init: state HANDSHAKE_WAIT1
//!   send handshake {version, protoversion, ------>   handshake: check protoversion,
//!                   registry name->id}               sync ids with the server's registry
//!   (other conntypes: init runs in Python)           ("packetregmismatch" if names differ
//!                                                     and missingpacketaction says so)
//!                                      <-------      send accept {success: true}
//! accept: state ACTIVE, handshake complete           state ACTIVE, handshake complete
//!
//! either side, any time: close {reason} -> the receiver closes with that reason
//! ```
//!
//! A packet that arrives in a state where it is not expected is ignored or closes the
//! connection with "smartpacketinvalid", exactly as the original's internal
//! `SmartPacket` classes decide.
//!
//! * [`constants`]: states, internal packet ids and names, close reasons.
//! * [`table`]: the name <-> id table and the handshake's registry synchronisation.
//! * [`handshake`]: the server- and client-side state machines.
//! * [`heartbeat`]: when to probe a peer or give up on it, and round-trip timing.

pub mod constants;
pub mod handshake;
pub mod heartbeat;
pub mod table;
