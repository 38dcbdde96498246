//! Ending a connection: our graceful close, the peer's close, aborts, and the one
//! place that reports a connection closed (see the close protocol in
//! [`super`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Event, LogLevel};
use crate::peer::constants::reason;
use crate::protocol::{InflateError, ProtocolError};
use crate::transport::outbox::Outbound;
use crate::transport::sync::Unpoisoned;

use super::{Conn, PEER_CLOSE_GRACE};

impl Conn {
    /// Closes gracefully: everything queued so far is sent, then a close packet with
    /// `reason`; then the connection is reported closed with that reason. If that takes
    /// longer than `close_timeout` (a peer that does not read), the connection is
    /// aborted instead.
    pub fn close(self: &Arc<Self>, reason: Option<String>) {
        // Under the send lock: once the close is queued, no frame may be written
        // directly any more (it could land inside the close packet).
        let order = self.send_lock.lock_anyway();
        if self.closing.swap(true, Ordering::SeqCst) {
            return;
        }
        *self.intended_reason.lock_anyway() = Some(reason.clone());
        let queued = self.push_outbound(Outbound::Close(reason.clone()));
        drop(order);
        self.changed.notify_waiters();
        if !queued {
            self.finish(reason);
            return;
        }
        let conn = self.clone();
        let deadline = self.settings.close_timeout;
        crate::transport::runtime::runtime().spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(deadline) => conn.abort(reason),
                () = conn.cancel.cancelled() => {}
            }
        });
    }

    /// The peer sent a close packet: reported closed with its reason now; the socket is
    /// drained until the peer hangs up, for at most [`PEER_CLOSE_GRACE`].
    pub(super) fn peer_closed(self: &Arc<Self>, reason: Option<String>) {
        self.finish(reason);
        let conn = self.clone();
        crate::transport::runtime::runtime().spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(PEER_CLOSE_GRACE) => conn.cancel.cancel(),
                () = conn.cancel.cancelled() => {}
            }
        });
    }

    /// Why the connection ended when the peer hung up without a close packet.
    pub(in crate::transport) fn hangup_reason(&self) -> Option<String> {
        self.role.hangup_reason()
    }

    /// Ends the connection at once, without a close packet, reporting `reason`.
    pub fn abort(self: &Arc<Self>, reason: Option<String>) {
        self.finish(reason);
        self.cancel.cancel();
    }

    /// Reports the connection closed (once) and stops accepting input from it.
    pub(in crate::transport) fn finish(self: &Arc<Self>, reason: Option<String>) {
        if self.finished.swap(true, Ordering::SeqCst) {
            return;
        }
        let intended = self.intended_reason.lock_anyway().clone();
        let reason = intended.unwrap_or(reason);
        self.closing.store(true, Ordering::SeqCst);
        // Finished and closing are set: this wakes waiters for room and for an init.
        self.changed.notify_waiters();
        self.close_reason.lock_anyway().clone_from(&reason);
        self.inbox.push(Event::Closed {
            conn: self.clone(),
            reason,
        });
        self.role.status_changed(self);
    }

    /// Refuses the rest of this connection's input because a packet body turned out to
    /// be invalid when Python decoded it; closes with `reason`.
    pub fn reject_input(self: &Arc<Self>, reason: String) {
        self.input_rejected.store(true, Ordering::SeqCst);
        self.close(Some(reason));
    }

    /// Whether [`Conn::reject_input`] was called: queued packets must be dropped.
    pub fn input_rejected(&self) -> bool {
        self.input_rejected.load(Ordering::SeqCst)
    }

    /// Closes the connection because its peer broke the protocol.
    /// (A body that could not be inflated for lack of memory is not the peer's fault:
    /// that closes with "memorylimit".)
    pub(in crate::transport) fn protocol_error(self: &Arc<Self>, err: &ProtocolError) {
        self.log_end(LogLevel::Warning, "closing", err);
        if matches!(err, ProtocolError::Inflate(InflateError::OverBudget { .. })) {
            self.close(Some(reason::MEMORY_LIMIT.to_owned()));
            return;
        }
        self.close(Some(format!("{}: {err}", reason::PROTOCOL_ERROR)));
    }

    /// Tells the log why the connection ends: "`{what}` connection `cid` from `addr`:
    /// `why`".
    pub(super) fn log_end(
        self: &Arc<Self>,
        level: LogLevel,
        what: &str,
        why: impl std::fmt::Display,
    ) {
        self.inbox.push(Event::Log {
            conn: self.clone(),
            level,
            message: format!(
                "{what} connection {} from {}: {why}",
                self.cid, self.peer_addr
            ),
        });
    }
}
