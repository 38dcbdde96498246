//! Receiving on a connection: frames to the inbox or through the handshake rules,
//! internal packets held while a connection type's `init` runs in Python, and the
//! heartbeat and handshake timers (rules in [`crate::peer::heartbeat`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::{Event, LogLevel};
use crate::peer::constants::{pid, reason, state};
use crate::peer::heartbeat::{Cadence, Heard, Tick};
use crate::protocol::msgpack::{ReadLimits, Value};
use crate::protocol::packet;
use crate::protocol::{Frame, FrameError, Header, ProtocolError, HEADER_LEN, INTERNAL_ID_LIMIT};
use crate::transport::stats::Traffic;
use crate::transport::timers::{self, Timed, Timer};

use super::Conn;

impl Conn {
    /// Python finished running a connection type's `init`: held internal packets may
    /// be processed now.
    pub fn init_done(&self) {
        self.init_pending.store(false, Ordering::SeqCst);
        self.init_done.notify_waiters();
    }

    pub(in crate::transport) async fn wait_for_init(&self) {
        loop {
            let notified = self.init_done.notified();
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
    /// through the handshake rules first. Gives the frame back, untouched, if it is an
    /// internal packet that must wait for a connection type's `init` in Python (see
    /// [`Conn::wait_for_init`]); the reader hands it back once that is done.
    pub(in crate::transport) fn handle_frame_now(
        self: &Arc<Self>,
        frame: Frame,
        read_limits: ReadLimits,
    ) -> Result<Option<Frame>, ProtocolError> {
        let packet_id = frame.header.pid;
        let internal = packet_id < INTERNAL_ID_LIMIT;
        if internal && packet_id != pid::CLOSE {
            if self.init_pending.load(Ordering::SeqCst) && !self.is_finished() {
                return Ok(Some(frame));
            }
            if self.is_finished() {
                return Ok(None);
            }
        }
        let (body, _inflating) = self.open_body(&frame)?;
        Traffic::add(&self.traffic.wire_body_in, frame.body.len());
        Traffic::add(&self.traffic.payload_in, body.len());
        let flags = frame.header.flags.bits();
        if !internal {
            self.inbox.push(Event::Packet {
                conn: self.clone(),
                pid: packet_id,
                flags,
                body,
            });
            return Ok(None);
        }
        let msg = Value::decode(&body, read_limits)?;
        if packet_id == pid::HEARTBEAT {
            // Heartbeats stay in the core: the registry does not know them.
            self.heartbeat_received(&msg);
            return Ok(None);
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
        Ok(None)
    }

    /// The msgpack body of a received frame, inflated within the limit for the
    /// connection's state and within the memory budget, with the charge for the
    /// inflated body: it is given back once the body is queued (and charged) as an
    /// event.
    fn open_body(&self, frame: &Frame) -> Result<(Bytes, Charged<'_>), ProtocolError> {
        let mut inflating = Charged(self, 0);
        let body = packet::open_body_within(frame, self.inflate_limit(), &mut |n| {
            let granted = self.try_charge_memory(n);
            if granted {
                inflating.1 += n;
            }
            granted
        })?;
        Ok((body, inflating))
    }

    /// Handles a frame that [`Conn::handle_frame_now`] gave back, once the connection
    /// type's `init` is done (dropped if the connection ends first).
    pub(in crate::transport) async fn handle_frame_after_init(
        self: &Arc<Self>,
        mut frame: Frame,
        read_limits: ReadLimits,
    ) -> Result<(), ProtocolError> {
        loop {
            self.wait_for_init().await;
            if self.cancel.is_cancelled() || self.is_finished() {
                return Ok(());
            }
            match self.handle_frame_now(frame, read_limits)? {
                None => return Ok(()),
                Some(again) => frame = again,
            }
        }
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
    pub(super) fn start_heartbeat(self: &Arc<Self>) {
        if self.settings.keepalive.is_none() {
            return;
        }
        if self.heartbeat_on.swap(true, Ordering::SeqCst) {
            return;
        }
        let now = Instant::now();
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
                if self.state() < state::ACTIVE {
                    self.log_end(
                        LogLevel::Info,
                        "closing",
                        format_args!("no handshake within {timeout:?}"),
                    );
                    self.close(Some(reason::HANDSHAKE_TIMEOUT.to_owned()));
                }
                None
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

/// Bytes charged to a connection's memory budget for as long as this lives.
struct Charged<'a>(&'a Conn, usize);

impl Drop for Charged<'_> {
    fn drop(&mut self) {
        self.0.release_memory(self.1);
    }
}

impl Timed for Conn {
    fn due(self: Arc<Self>, timer: Timer) -> Option<(Instant, Timer)> {
        self.timer_due(timer)
    }
}
