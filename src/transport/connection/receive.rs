//! Receiving on a connection: frames to the inbox or through the handshake rules,
//! internal packets held while a connection type's `init` runs in Python, large
//! compressed bodies inflated on the bulk threads, and the
//! heartbeat and handshake timers (rules in [`crate::peer::heartbeat`]).

use std::ops::Deref;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::{Event, LogLevel};
use crate::peer::constants::{pid, reason, state};
use crate::peer::heartbeat::{Cadence, Heard, Tick};
use crate::protocol::msgpack::{ReadLimits, Value};
use crate::protocol::packet;
use crate::protocol::{
    Flags, Frame, FrameError, Header, InflateError, ProtocolError, HEADER_LEN, INTERNAL_ID_LIMIT,
};
use crate::transport::bulk;
use crate::transport::stats::Traffic;
use crate::transport::timers::{self, Timed, Timer};

use super::Conn;

/// `Conn::deadline_hand_off`: the handshake deadline's timer entry is still to come ...
pub(super) const DEADLINE_PENDING: u8 = 0;
/// ... and starts the heartbeats when it does ...
const DEADLINE_STARTS_HEARTBEAT: u8 = 1;
/// ... or it came due (or there was none to wait for).
const DEADLINE_PASSED: u8 = 2;

/// Bodies that inflate to at most this many bytes are inflated by whoever handles
/// their frame (a reader task, or a Python thread reading its socket); larger ones on
/// a bulk thread, at a lower priority (see [`crate::transport::bulk`]). A larger one
/// costs this much inflating twice, or nothing if its compressed body alone is over a
/// quarter of it (it is sent to a bulk thread without trying).
const INLINE_INFLATE_MAX: usize = 256 * 1024;

impl Conn {
    /// Python finished running a connection type's `init`: held internal packets may
    /// be processed now.
    pub fn init_done(&self) {
        self.init_pending.store(false, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    pub(in crate::transport) async fn wait_for_init(&self) {
        loop {
            let notified = self.changed.notified();
            if !self.init_pending.load(Ordering::SeqCst) || self.is_finished() {
                return;
            }
            tokio::select! {
                () = notified => {}
                () = self.cancel.cancelled() => return,
            }
        }
    }

    // --- receiving ------------------------------------------------------------------

    /// Handles one received frame now: app packets go to the inbox, internal ones
    /// through the handshake rules first. Gives the frame back, untouched, to be
    /// handled later by [`Conn::handle_held_frame`] (which the reader does before any
    /// frame after it) if it is an internal packet that must wait for a connection
    /// type's `init` in Python (see [`Conn::wait_for_init`]), or a compressed body
    /// that inflates to more than [`INLINE_INFLATE_MAX`].
    pub(in crate::transport) fn handle_frame_now(
        self: &Arc<Self>,
        frame: Frame,
        read_limits: ReadLimits,
    ) -> Result<Option<Frame>, ProtocolError> {
        match self.gate(frame.header.pid) {
            Gate::Hold => return Ok(Some(frame)),
            Gate::Drop => return Ok(None),
            Gate::Open => {}
        }
        let limit = self.inflate_limit();
        let inline_limit = limit.min(INLINE_INFLATE_MAX);
        let compressed = frame.header.flags.contains(Flags::COMPRESSED);
        if compressed && inline_limit < limit && frame.body.len() > INLINE_INFLATE_MAX / 4 {
            // It would almost surely inflate beyond the inline limit: no attempt.
            return Ok(Some(frame));
        }
        let (body, _inflating) = match self.open_body(&frame, inline_limit) {
            Err(ProtocolError::Inflate(InflateError::TooLarge { .. })) if inline_limit < limit => {
                return Ok(Some(frame));
            }
            opened => opened?,
        };
        self.deliver(&frame, body, read_limits)?;
        Ok(None)
    }

    /// Handles a frame that [`Conn::handle_frame_now`] gave back: once the connection
    /// type's `init` is done (dropped if the connection ends first), a compressed body
    /// inflated on a bulk thread (see [`crate::transport::bulk`]).
    pub(in crate::transport) async fn handle_held_frame(
        self: &Arc<Self>,
        frame: Frame,
        read_limits: ReadLimits,
    ) -> Result<(), ProtocolError> {
        loop {
            self.wait_for_init().await;
            if self.cancel.is_cancelled() || self.is_finished() {
                return Ok(());
            }
            match self.gate(frame.header.pid) {
                Gate::Hold => continue,
                Gate::Drop => return Ok(()),
                Gate::Open => break,
            }
        }
        let limit = self.inflate_limit();
        let (body, _inflating) = if frame.header.flags.contains(Flags::COMPRESSED) {
            let conn = self.clone();
            let held = frame.clone();
            // The charge moves to an owner that outlives the closure: if this task
            // stops waiting, it is given back where the result is dropped.
            let (body, charge) = bulk::run(move || {
                let opened = conn.open_body(&held, limit);
                opened.map(|(body, charge)| (body, charge.move_to(conn.clone())))
            })
            .await
            .unwrap_or_else(|| {
                Err(InflateError::Corrupt("the inflating thread failed".into()).into())
            })?;
            (body, charge.move_to(&**self))
        } else {
            self.open_body(&frame, limit)?
        };
        self.deliver(&frame, body, read_limits)
    }

    /// Whether a frame with `packet_id` may be handled now.
    fn gate(&self, packet_id: u32) -> Gate {
        if packet_id >= INTERNAL_ID_LIMIT || packet_id == pid::CLOSE {
            Gate::Open
        } else if self.is_finished() {
            Gate::Drop
        } else if self.init_pending.load(Ordering::SeqCst) {
            Gate::Hold
        } else {
            Gate::Open
        }
    }

    /// Queues a received packet whose body is opened, after running an internal one
    /// through the handshake rules. A body that is not valid msgpack breaks the
    /// protocol.
    fn deliver(
        self: &Arc<Self>,
        frame: &Frame,
        body: Bytes,
        read_limits: ReadLimits,
    ) -> Result<(), ProtocolError> {
        let packet_id = frame.header.pid;
        Traffic::add(&self.traffic.wire_body_in, frame.body.len());
        Traffic::add(&self.traffic.payload_in, body.len());
        let flags = frame.header.flags.bits();
        if packet_id >= INTERNAL_ID_LIMIT {
            self.inbox.push(Event::Packet {
                conn: self.clone(),
                pid: packet_id,
                flags,
                body,
            });
            return Ok(());
        }
        let msg = Value::decode(&body, read_limits)?;
        if packet_id == pid::HEARTBEAT {
            // Heartbeats stay in the core: the registry does not know them.
            self.heartbeat_received(&msg);
            return Ok(());
        }
        if let Some(sent) = self.probes().handshake_answered() {
            self.set_rtt(sent);
        }
        let actions = self.role.internal_packet(self, packet_id, &msg);
        // The packet itself first (on_receive), then what it caused (on_close, ...).
        self.inbox.push(Event::Packet {
            conn: self.clone(),
            pid: packet_id,
            flags,
            body,
        });
        self.apply(actions);
        Ok(())
    }

    /// The msgpack body of a received frame, inflated within `limit` and within the
    /// memory budget, with the charge for the inflated body: it is given back once the
    /// body is queued (and charged) as an event. Stops early once the connection is
    /// stopped (a bulk thread may still be inflating for it).
    fn open_body(
        &self,
        frame: &Frame,
        limit: usize,
    ) -> Result<(Bytes, Charged<&Conn>), ProtocolError> {
        let mut inflating = Charged(self, 0);
        let body = packet::open_body_within(frame, limit, &mut |n| {
            let granted = !self.cancel.is_cancelled() && self.try_charge_memory(n);
            if granted {
                inflating.1 += n;
            }
            granted
        })?;
        Ok((body, inflating))
    }

    /// Queues a packet for Python as if it had arrived on this connection (for the
    /// `receive_packet` compatibility methods). `raw` is a header and body, without the
    /// length prefix; internal packets are not run through the handshake rules.
    pub fn inject(self: &Arc<Self>, raw: &[u8]) -> Result<(), ProtocolError> {
        if raw.len() < HEADER_LEN {
            return Err(FrameError::TooShort {
                len: raw.len() as u32,
            }
            .into());
        }
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&raw[..HEADER_LEN]);
        let frame = Frame {
            header: Header::decode(&header),
            body: Bytes::copy_from_slice(&raw[HEADER_LEN..]),
        };
        let body = packet::open_body(&frame, &self.settings.limits)?;
        self.inbox.push(Event::Packet {
            conn: self.clone(),
            pid: frame.header.pid,
            flags: frame.header.flags.bits(),
            body,
        });
        Ok(())
    }

    // --- heartbeats ---------------------------------------------------------------------

    /// Starts probing the peer every keepalive interval and closing the connection with
    /// "timeout" once nothing has arrived for the keepalive timeout.
    ///
    /// A connection has one entry in the timer queue, not two, where it can: while its
    /// handshake deadline is still to come within the first interval (with the default
    /// settings, always), that deadline's entry starts the heartbeats when it comes due,
    /// from the end of the handshake, as a timer of their own would have. An entry is
    /// 64 bytes, and the queue keeps the room it once needed.
    pub(super) fn start_heartbeat(self: &Arc<Self>) {
        let Some(keepalive) = self.settings.keepalive else {
            return;
        };
        if self.heartbeat_on.swap(true, Ordering::SeqCst) {
            return;
        }
        let now = Instant::now();
        let deadline = self.settings.handshake_timeout.map(|t| self.started + t);
        if deadline.is_some_and(|due| due <= now + keepalive.interval)
            && self
                .deadline_hand_off
                .compare_exchange(
                    DEADLINE_PENDING,
                    DEADLINE_STARTS_HEARTBEAT,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )
                .is_ok()
        {
            return;
        }
        // No deadline, a later one, or it came due already.
        timers::schedule(self, now, Timer::Heartbeat { last_probe: now });
    }

    /// Does what `timer` came due for; returns the follow-up timer, if any.
    ///
    /// Heartbeats: a connection from which nothing (probe answers included) has
    /// arrived for the keepalive timeout is closed with "timeout"; otherwise the peer
    /// is probed every interval.
    pub(in crate::transport) fn timer_due(
        self: &Arc<Self>,
        timer: Timer,
    ) -> Option<(Instant, Timer)> {
        if self.is_closing() || self.cancel.is_cancelled() {
            return None;
        }
        match timer {
            Timer::HandshakeDeadline { timeout } => {
                let hand_off = self
                    .deadline_hand_off
                    .swap(DEADLINE_PASSED, Ordering::SeqCst);
                if self.state() < state::ACTIVE {
                    self.log_end(
                        LogLevel::Info,
                        "closing",
                        format_args!("no handshake within {timeout:?}"),
                    );
                    self.close(Some(reason::HANDSHAKE_TIMEOUT.to_owned()));
                    return None;
                }
                // The heartbeats start here, as if a timer of their own had run since
                // the end of the handshake (see `start_heartbeat`).
                (hand_off == DEADLINE_STARTS_HEARTBEAT).then(|| {
                    let last_probe = self.handshake_done_at().unwrap_or_else(Instant::now);
                    (Instant::now(), Timer::Heartbeat { last_probe })
                })
            }
            Timer::Heartbeat { last_probe } => {
                let keepalive = self.settings.keepalive?;
                let cadence = Cadence {
                    interval: keepalive.interval,
                    timeout: keepalive.timeout,
                };
                let now = Instant::now();
                match self.probes().tick(cadence, now, last_probe, self.silence()) {
                    Tick::GiveUp { silence } => {
                        self.log_end(
                            LogLevel::Info,
                            "closing",
                            format_args!("nothing received for {silence:?}"),
                        );
                        self.close(Some(reason::TIMEOUT.to_owned()));
                        None
                    }
                    Tick::Continue {
                        probe,
                        next,
                        last_probe,
                    } => {
                        if let Some(body) = probe {
                            self.send_heartbeat(&body);
                        }
                        Some((next, Timer::Heartbeat { last_probe }))
                    }
                }
            }
        }
    }

    /// Queues a heartbeat packet (no `on_send`: it is not the app's packet).
    pub(super) fn send_heartbeat(self: &Arc<Self>, body: &Value) {
        self.queue_core_packet(pid::HEARTBEAT, body);
    }

    /// Answers a probe; times the round trip of an answer to our last probe.
    pub(super) fn heartbeat_received(self: &Arc<Self>, msg: &Value) {
        let heard = self.probes().heard(msg);
        match heard {
            Heard::Answer(body) if !self.is_closing() => self.send_heartbeat(&body),
            Heard::RoundTrip(sent) => self.set_rtt(sent),
            Heard::Answer(_) | Heard::Nothing => {}
        }
    }
}

/// Whether a frame may be handled now (see [`Conn::handle_frame_now`]).
enum Gate {
    Open,
    /// An internal packet while a connection type's `init` runs.
    Hold,
    /// An internal packet after the connection ended.
    Drop,
}

/// Bytes charged to a connection's memory budget for as long as this lives.
struct Charged<C: Deref<Target = Conn>>(C, usize);

impl<C: Deref<Target = Conn>> Charged<C> {
    /// The same charge, held by `holder`.
    fn move_to<H: Deref<Target = Conn>>(mut self, holder: H) -> Charged<H> {
        Charged(holder, std::mem::take(&mut self.1))
    }
}

impl<C: Deref<Target = Conn>> Drop for Charged<C> {
    fn drop(&mut self) {
        self.0.release_memory(self.1);
    }
}

impl Timed for Conn {
    fn due(self: Arc<Self>, timer: Timer) -> Option<(Instant, Timer)> {
        self.timer_due(timer)
    }
}
