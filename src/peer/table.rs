//! The packet table: which packet name has which id on this connection.
//!
//! The server's table is the truth. During the handshake the client adopts the
//! server's ids for every name both sides registered. Names only the client knows keep
//! their id unless the server uses that id for another name, in which case they move
//! to the lowest free id from 64 up. (The original overwrote ids in place, which could
//! leave one name without an id and one id without a packet.)
//!
//! Who owns the ids when (one rule, for both languages): the app's Python registry
//! owns them until a client's handshake. Every registration there is mirrored into the
//! core's table at once (the registry tells its listeners), and the core never changes
//! a server's table. A client's handshake is decided in the core, with this table
//! ([`PacketTable::synced_with`]); the client's core then counts a new table epoch, and
//! the Python client adopts the new ids into its registry before it dispatches anything
//! else (`Client._sync_registry`). After that, ids reach the core from Python only by
//! new registrations.

use std::collections::{HashMap, HashSet};

use thiserror::Error;

use super::constants::INTERNAL_PACKETS;
use crate::protocol::msgpack::Value;
use crate::protocol::INTERNAL_ID_LIMIT;

/// Why a name or id could not be added.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TableError {
    /// The name already has an id.
    #[error("packet name {name:?} is already registered with id {id}")]
    NameTaken {
        /// The name.
        name: String,
        /// Its existing id.
        id: u32,
    },
    /// The id already belongs to another name.
    #[error("packet id {id} is already used by {name:?}")]
    IdTaken {
        /// The id.
        id: u32,
        /// The name that has it.
        name: String,
    },
}

/// Why the client's registry cannot be synchronised with the server's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncMismatch {
    /// Names the server registered and the client did not.
    pub only_remote: Vec<String>,
    /// Names the client registered and the server did not.
    pub only_local: Vec<String>,
}

/// A two-way name <-> id table that remembers registration order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PacketTable {
    order: Vec<(String, u32)>,
    by_name: HashMap<String, u32>,
    by_id: HashMap<u32, String>,
}

impl PacketTable {
    /// An empty table.
    pub fn new() -> Self {
        PacketTable::default()
    }

    /// A table holding the five internal packets.
    pub fn with_internal_packets() -> Self {
        let mut table = PacketTable::new();
        for (name, id) in INTERNAL_PACKETS {
            table.order.push((name.to_owned(), id));
            table.by_name.insert(name.to_owned(), id);
            table.by_id.insert(id, name.to_owned());
        }
        table
    }

    /// Adds `name` with `id`; both must be unused.
    pub fn insert(&mut self, name: &str, id: u32) -> Result<(), TableError> {
        if let Some(&existing) = self.by_name.get(name) {
            return Err(TableError::NameTaken {
                name: name.to_owned(),
                id: existing,
            });
        }
        if let Some(existing) = self.by_id.get(&id) {
            return Err(TableError::IdTaken {
                id,
                name: existing.clone(),
            });
        }
        self.order.push((name.to_owned(), id));
        self.by_name.insert(name.to_owned(), id);
        self.by_id.insert(id, name.to_owned());
        Ok(())
    }

    /// Removes `name`; returns the id it had.
    pub fn remove(&mut self, name: &str) -> Option<u32> {
        let id = self.by_name.remove(name)?;
        self.by_id.remove(&id);
        self.order.retain(|(n, _)| n != name);
        Some(id)
    }

    /// The id of `name`.
    pub fn id_of(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// The name that has `id`.
    pub fn name_of(&self, id: u32) -> Option<&str> {
        self.by_id.get(&id).map(String::as_str)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// `(name, id)` pairs in registration order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, u32)> {
        self.order.iter().map(|(name, id)| (name.as_str(), *id))
    }

    /// The table as the handshake packet's `registry` map (name -> id, in order).
    pub fn to_value(&self) -> Value {
        Value::map(self.entries().map(|(name, id)| (name, Value::from(id))))
    }

    /// Reads the `registry` map of a handshake packet: string names to ids that fit the
    /// header. Returns `None` if it is not such a map or two names share an id.
    pub fn parse_remote(value: &Value) -> Option<Vec<(String, u32)>> {
        let Value::Map(pairs) = value else {
            return None;
        };
        let mut order: Vec<(String, u32)> = Vec::with_capacity(pairs.len());
        let mut index: HashMap<String, usize> = HashMap::new();
        for (key, id) in pairs {
            let name = key.as_str()?;
            let id = u32::try_from(id.as_i64()?).ok()?;
            // A duplicate key replaces the earlier value, as in the dict it came from.
            match index.get(name) {
                Some(&i) => order[i].1 = id,
                None => {
                    index.insert(name.to_owned(), order.len());
                    order.push((name.to_owned(), id));
                }
            }
        }
        let mut ids = HashSet::new();
        order.iter().all(|(_, id)| ids.insert(*id)).then_some(order)
    }

    /// Whether this table has exactly the names of `remote` (a table from
    /// [`PacketTable::parse_remote`]), each with the same id: the usual handshake, with
    /// nothing to re-number.
    pub fn agrees_with(&self, remote: &[(String, u32)]) -> bool {
        remote.len() == self.order.len()
            && remote
                .iter()
                .all(|(name, id)| self.by_name.get(name.as_str()) == Some(id))
    }

    /// This (client) table re-numbered to agree with the server's `remote` table.
    ///
    /// With `require_same_names`, a difference in registered names is an error
    /// (`net.registry.missingpacketaction = "closeconnection"`); otherwise shared names
    /// take the server's ids and the others are kept clear of them.
    pub fn synced_with(
        &self,
        remote: &[(String, u32)],
        require_same_names: bool,
    ) -> Result<PacketTable, SyncMismatch> {
        let remote_ids: HashMap<&str, u32> =
            remote.iter().map(|(n, id)| (n.as_str(), *id)).collect();
        if require_same_names {
            let only_remote: Vec<String> = remote
                .iter()
                .filter(|(name, _)| !self.by_name.contains_key(name))
                .map(|(name, _)| name.clone())
                .collect();
            let only_local: Vec<String> = self
                .order
                .iter()
                .filter(|(name, _)| !remote_ids.contains_key(name.as_str()))
                .map(|(name, _)| name.clone())
                .collect();
            if !only_remote.is_empty() || !only_local.is_empty() {
                return Err(SyncMismatch {
                    only_remote,
                    only_local,
                });
            }
        }
        let mut taken: HashSet<u32> = remote.iter().map(|(_, id)| *id).collect();
        let mut synced = PacketTable::new();
        // Shared names first take the server's ids, so that a local-only name can never
        // hold an id the server has given to someone else.
        let mut local_only = Vec::new();
        for (name, id) in &self.order {
            match remote_ids.get(name.as_str()) {
                Some(&remote_id) => {
                    synced.order.push((name.clone(), remote_id));
                }
                None => local_only.push((name.clone(), *id)),
            }
        }
        let mut next_free = INTERNAL_ID_LIMIT;
        for (name, id) in local_only {
            let id = if taken.contains(&id) {
                while taken.contains(&next_free) {
                    next_free += 1;
                }
                next_free
            } else {
                id
            };
            taken.insert(id);
            synced.order.push((name, id));
        }
        // Restore the local registration order for the rebuilt maps.
        let position: HashMap<&str, usize> = self
            .order
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.as_str(), i))
            .collect();
        synced
            .order
            .sort_by_key(|(name, _)| position[name.as_str()]);
        for (name, id) in &synced.order {
            synced.by_name.insert(name.clone(), *id);
            synced.by_id.insert(*id, name.clone());
        }
        Ok(synced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(&str, u32)]) -> PacketTable {
        let mut t = PacketTable::with_internal_packets();
        for (name, id) in entries {
            t.insert(name, *id).unwrap();
        }
        t
    }

    fn remote(t: &PacketTable) -> Vec<(String, u32)> {
        PacketTable::parse_remote(&t.to_value()).unwrap()
    }

    #[test]
    fn insert_refuses_duplicates() {
        let mut t = table(&[("a", 64)]);
        assert!(matches!(
            t.insert("a", 65),
            Err(TableError::NameTaken { id: 64, .. })
        ));
        assert!(matches!(t.insert("b", 64), Err(TableError::IdTaken { .. })));
        assert!(matches!(t.insert("c", 1), Err(TableError::IdTaken { .. })));
        assert_eq!(t.remove("a"), Some(64));
        t.insert("b", 64).unwrap();
        assert_eq!(t.name_of(64), Some("b"));
    }

    #[test]
    fn registry_value_keeps_order_and_round_trips() {
        let t = table(&[("game:move", 64), ("game:chat", 65)]);
        let value = t.to_value();
        let Value::Map(pairs) = &value else { panic!() };
        assert_eq!(pairs[0].0.as_str(), Some("peng3dnet:internal.hello"));
        assert_eq!(pairs[6].0.as_str(), Some("game:chat"));
        assert_eq!(remote(&t).len(), 7);
    }

    #[test]
    fn a_table_agrees_only_with_the_same_names_and_ids() {
        let server = table(&[("a", 64), ("b", 65)]);
        assert!(table(&[("b", 65), ("a", 64)]).agrees_with(&remote(&server)));
        assert!(!table(&[("a", 65), ("b", 64)]).agrees_with(&remote(&server)));
        assert!(!table(&[("a", 64)]).agrees_with(&remote(&server)));
        assert!(!table(&[("a", 64), ("b", 65), ("c", 66)]).agrees_with(&remote(&server)));
        assert!(!table(&[("a", 64), ("x", 65)]).agrees_with(&remote(&server)));
        // What agrees needs no re-numbering.
        let client = table(&[("b", 65), ("a", 64)]);
        let synced = client.synced_with(&remote(&server), true).unwrap();
        assert_eq!(synced, client);
    }

    #[test]
    fn different_registration_order_is_synced_without_collisions() {
        // The reference's bug 17: the client registered the same packets in another
        // order, so its ids are swapped relative to the server's.
        let server = table(&[("a", 64), ("b", 65), ("c", 66)]);
        let client = table(&[("c", 64), ("a", 65), ("b", 66)]);
        let synced = client.synced_with(&remote(&server), true).unwrap();
        for name in ["a", "b", "c"] {
            assert_eq!(synced.id_of(name), server.id_of(name), "{name}");
        }
        assert_eq!(synced.len(), server.len());
        assert_eq!(synced.name_of(64), Some("a"));
    }

    #[test]
    fn mismatch_is_reported_when_required() {
        let server = table(&[("a", 64), ("b", 65)]);
        let client = table(&[("a", 64), ("x", 65)]);
        let err = client.synced_with(&remote(&server), true).unwrap_err();
        assert_eq!(err.only_remote, vec!["b".to_owned()]);
        assert_eq!(err.only_local, vec!["x".to_owned()]);
    }

    #[test]
    fn local_only_names_move_off_server_ids() {
        let server = table(&[("a", 64), ("b", 65)]);
        let client = table(&[("x", 64), ("a", 70), ("y", 71)]);
        let synced = client.synced_with(&remote(&server), false).unwrap();
        assert_eq!(synced.id_of("a"), Some(64));
        let x = synced.id_of("x").unwrap();
        assert!(x != 64 && x != 65 && x >= 64, "x got {x}");
        assert_eq!(
            synced.id_of("y"),
            Some(71),
            "an id the server does not use is kept"
        );
        assert_eq!(
            synced.id_of("b"),
            None,
            "names the client lacks are not invented"
        );
        let ids: HashSet<u32> = synced.entries().map(|(_, id)| id).collect();
        assert_eq!(ids.len(), synced.len());
    }

    #[test]
    fn parse_remote_rejects_malformed_registries() {
        assert!(PacketTable::parse_remote(&Value::Nil).is_none());
        let bad_id = Value::map([("a", Value::from("x"))]);
        assert!(PacketTable::parse_remote(&bad_id).is_none());
        let too_big = Value::map([("a", Value::UInt(1 << 40))]);
        assert!(PacketTable::parse_remote(&too_big).is_none());
        let shared_id = Value::map([("a", Value::from(64u32)), ("b", Value::from(64u32))]);
        assert!(PacketTable::parse_remote(&shared_id).is_none());
        let bytes_key = Value::Map(vec![(Value::Bin(b"a".to_vec()), Value::from(64u32))]);
        assert!(PacketTable::parse_remote(&bytes_key).is_none());
        let duplicate = Value::map([("a", Value::from(64u32)), ("a", Value::from(65u32))]);
        assert_eq!(
            PacketTable::parse_remote(&duplicate),
            Some(vec![("a".to_owned(), 65)])
        );
    }
}
