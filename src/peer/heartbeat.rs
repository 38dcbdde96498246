//! Heartbeats and round-trip times, as rules without I/O: when to probe a peer, when to
//! give up on a silent one, how to answer a probe, and which packet answers which
//! request. The transport keeps one [`Probes`] per connection, feeds it the clock and
//! what arrived, and carries out what it returns.
//!
//! A heartbeat is the internal packet `pid::HEARTBEAT` with the body `{"ping": n}` (a
//! probe) or `{"pong": n}` (its answer). Only two peng3dnet-rs peers that both offered
//! heartbeats in the handshake send them; the original never sees one.

use std::time::{Duration, Instant};

use crate::protocol::msgpack::Value;

/// How often a connection is probed and how long it may stay silent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cadence {
    /// Time between probes.
    pub interval: Duration,
    /// Silence (nothing at all received) after which the connection is given up.
    pub timeout: Duration,
}

/// The outstanding requests of one connection whose answers time a round trip.
#[derive(Debug, Default)]
pub struct Probes {
    /// A handshake packet (hello, settype) was sent at this time; the peer's next
    /// internal packet answers it.
    handshake: Option<Instant>,
    /// The last heartbeat probe: its number and when it was sent.
    heartbeat: Option<(u64, Instant)>,
    /// Number of the next heartbeat probe.
    next_heartbeat: u64,
}

/// What the heartbeat timer asks for when it comes due.
#[derive(Debug, Clone, PartialEq)]
pub enum Tick {
    /// Nothing arrived for `silence`, at least the timeout: close with "timeout".
    GiveUp {
        /// How long nothing has arrived.
        silence: Duration,
    },
    /// Keep going: send `probe` if there is one, and come back at `next` with
    /// `last_probe` as the time of the latest probe.
    Continue {
        /// A heartbeat body to send now.
        probe: Option<Value>,
        /// When the timer is due again.
        next: Instant,
        /// When the latest probe was sent.
        last_probe: Instant,
    },
}

/// What a received heartbeat asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Heard {
    /// A probe: send this answer (unless the connection is closing).
    Answer(Value),
    /// The answer to our latest probe, sent at this time: a round trip is measured.
    RoundTrip(Instant),
    /// Anything else (an answer to an older probe, a body we do not know).
    Nothing,
}

impl Probes {
    /// A handshake packet that the peer answers was sent at `at`.
    pub fn handshake_sent(&mut self, at: Instant) {
        self.handshake = Some(at);
    }

    /// An internal packet arrived: if a handshake packet waited for an answer, when it
    /// was sent (a round trip is measured).
    pub fn handshake_answered(&mut self) -> Option<Instant> {
        self.handshake.take()
    }

    /// The heartbeat timer came due at `now`; the latest probe went out at
    /// `last_probe`, and nothing has arrived for `silence`.
    pub fn tick(
        &mut self,
        cadence: Cadence,
        now: Instant,
        last_probe: Instant,
        silence: Duration,
    ) -> Tick {
        if silence >= cadence.timeout {
            return Tick::GiveUp { silence };
        }
        let mut probe = None;
        let mut last_probe = last_probe;
        if now.duration_since(last_probe) >= cadence.interval {
            last_probe = now;
            let seq = self.next_heartbeat;
            self.next_heartbeat += 1;
            self.heartbeat = Some((seq, now));
            probe = Some(Value::map([("ping", Value::UInt(seq))]));
        }
        let until_probe = (last_probe + cadence.interval).saturating_duration_since(now);
        let wait = until_probe.min(cadence.timeout - silence);
        Tick::Continue {
            probe,
            next: now + wait,
            last_probe,
        }
    }

    /// A heartbeat with body `msg` arrived.
    pub fn heard(&mut self, msg: &Value) -> Heard {
        if let Some(seq) = msg.get("ping") {
            return Heard::Answer(Value::map([("pong", seq.clone())]));
        }
        let Some(seq) = msg.get("pong").and_then(Value::as_i64) else {
            return Heard::Nothing;
        };
        match self.heartbeat {
            Some((sent_seq, sent)) if i64::try_from(sent_seq) == Ok(seq) => {
                self.heartbeat = None;
                Heard::RoundTrip(sent)
            }
            _ => Heard::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CADENCE: Cadence = Cadence {
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(30),
    };

    fn ping(seq: u64) -> Value {
        Value::map([("ping", Value::UInt(seq))])
    }

    #[test]
    fn probes_every_interval_and_numbers_them() {
        let mut probes = Probes::default();
        let start = Instant::now();
        let tick = probes.tick(CADENCE, start, start, Duration::ZERO);
        // The first tick comes at the start: the interval has not passed, no probe.
        assert_eq!(
            tick,
            Tick::Continue {
                probe: None,
                next: start + CADENCE.interval,
                last_probe: start
            }
        );
        let later = start + CADENCE.interval;
        let tick = probes.tick(CADENCE, later, start, Duration::from_secs(10));
        assert_eq!(
            tick,
            Tick::Continue {
                probe: Some(ping(0)),
                // Silence is 10 s of 30: the next probe (10 s) comes before the timeout.
                next: later + CADENCE.interval,
                last_probe: later
            }
        );
        let Tick::Continue { probe, .. } =
            probes.tick(CADENCE, later + CADENCE.interval, later, Duration::ZERO)
        else {
            panic!("gave up on a talking peer");
        };
        assert_eq!(probe, Some(ping(1)));
    }

    #[test]
    fn wakes_for_the_timeout_before_the_next_probe() {
        let mut probes = Probes::default();
        let now = Instant::now();
        let silence = Duration::from_secs(25);
        let Tick::Continue { next, .. } = probes.tick(CADENCE, now, now, silence) else {
            panic!("gave up early");
        };
        assert_eq!(next, now + Duration::from_secs(5));
    }

    #[test]
    fn gives_up_after_the_timeout_of_silence() {
        let mut probes = Probes::default();
        let now = Instant::now();
        let tick = probes.tick(CADENCE, now, now, CADENCE.timeout);
        assert_eq!(
            tick,
            Tick::GiveUp {
                silence: CADENCE.timeout
            }
        );
    }

    #[test]
    fn answers_probes_and_times_only_the_latest_answer() {
        let mut probes = Probes::default();
        assert_eq!(
            probes.heard(&ping(7)),
            Heard::Answer(Value::map([("pong", Value::UInt(7))]))
        );
        let start = Instant::now();
        let sent = start + CADENCE.interval;
        probes.tick(CADENCE, sent, start, Duration::ZERO);
        let pong = |seq: u64| Value::map([("pong", Value::UInt(seq))]);
        assert_eq!(probes.heard(&pong(5)), Heard::Nothing);
        assert_eq!(probes.heard(&pong(0)), Heard::RoundTrip(sent));
        // Answered once: a repeated answer measures nothing.
        assert_eq!(probes.heard(&pong(0)), Heard::Nothing);
        assert_eq!(
            probes.heard(&Value::map([("x", Value::UInt(0))])),
            Heard::Nothing
        );
    }

    #[test]
    fn the_next_internal_packet_answers_a_handshake_packet() {
        let mut probes = Probes::default();
        assert_eq!(probes.handshake_answered(), None);
        let at = Instant::now();
        probes.handshake_sent(at);
        assert_eq!(probes.handshake_answered(), Some(at));
        assert_eq!(probes.handshake_answered(), None);
    }
}
